"""Secret-looking values are replaced before anything leaves in a package; ordinary personal
data is left alone (it is what the subject asked for)."""

from __future__ import annotations

from collections import Counter

import pytest

from apps.privacy.redaction import luhn_ok, scrub, scrub_value

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x9\nabc\n-----END RSA PRIVATE KEY-----"


@pytest.mark.parametrize(
    "text, kind, secret",
    [
        (f"my key:\n{PEM}\nthanks", "private_key", "MIIEowIBAAKCAQEA7x9"),
        (
            "curl -H 'Authorization: Bearer abcdefghijklmnop1234'",
            "bearer_token",
            "abcdefghijklmnop1234",
        ),
        ("db at postgresql://app:Sup3rS3cret@db.internal/app", "url_password", "Sup3rS3cret"),
        ("token ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8", "api_key", "ghp_A1b2C3d4E5f6G7h8I9j0"),
        ("aws AKIAIOSFODNN7EXAMPLE in the log", "api_key", "AKIAIOSFODNN7EXAMPLE"),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "api_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
        ("use ops_3f9a1c2e_vSgqramrAq0fx_CGU5RKRnIU please", "api_key", "vSgqramrAq0fx"),
        ("config: api_key = 'zz9-unique-value-77'", "api_key", "zz9-unique-value-77"),
        ("password: hunter2hunter2", "api_key", "hunter2hunter2"),
        ("card 4111 1111 1111 1111 exp 12/29", "card_number", "4111 1111 1111 1111"),
        ("card 5500-0000-0000-0004", "card_number", "5500-0000-0000-0004"),
    ],
)
def test_each_kind_of_secret_is_replaced_and_counted(text, kind, secret):
    clean, counts = scrub(text)
    assert secret not in clean
    assert f"[REDACTED:{kind}]" in clean
    assert counts[kind] == 1 and sum(counts.values()) == 1


def test_personal_data_and_non_secrets_are_left_alone():
    text = (
        "Ana Silva, ana.silva@example.com, +1 780 555 0100, order 4111111111111112 (not Luhn), "
        "born 1990-04-01, https://example.com/orders/42, invoice INV-2026-000123"
    )
    clean, counts = scrub(text)
    assert clean == text and not counts


def test_luhn():
    assert luhn_ok("4111111111111111") and luhn_ok("79927398713")
    assert not luhn_ok("4111111111111112")


def test_nested_values_are_scrubbed_and_counted_together():
    counts: Counter = Counter()
    value = {"note": "Bearer abcdefghijklmnop", "items": ["4111111111111111", 7, None]}
    clean = scrub_value(value, counts)
    assert clean == {
        "note": "[REDACTED:bearer_token]",
        "items": ["[REDACTED:card_number]", 7, None],
    }
    assert counts == {"bearer_token": 1, "card_number": 1}
