"""Secret-looking values in free text, replaced before anything leaves the portal in an access
or portability package. Pure: text in, text and counts out.

Kinds, in the order they are applied (a longer, more specific match wins over a shorter one):
- `private_key`: PEM blocks (`-----BEGIN ... PRIVATE KEY-----` to the matching END line);
- `bearer_token`: `Authorization: Bearer <token>` and `Bearer <token>`;
- `url_password`: the password part of `scheme://user:password@host`;
- `api_key`: well-known token shapes (GitHub `ghp_`/`gho_`/`ghs_`/`github_pat_`, Slack `xox?-`,
  AWS access key ids `AKIA...`, Stripe `sk_live_`/`sk_test_`, Google `AIza...`, this portal's own
  `ops_...` and `ofk_...`, JWTs), and `key=...`/`token: ...`/`secret=...` assignments;
- `card_number`: 13 to 19 digits (spaces or dashes allowed) that pass the Luhn check.

Each match becomes `[REDACTED:<kind>]`; `scrub` returns the text and a count per kind, which the
package's manifest adds up. Most strings of a package (names, dates, amounts, addresses) hold
none of the literals the patterns need and are returned as they are without running them.
"""

from __future__ import annotations

import re
from collections import Counter

_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9 ]+ )?PRIVATE KEY-----.*?-----END (?:[A-Z0-9 ]+ )?PRIVATE KEY-----",
    re.DOTALL,
)
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]{8,}=*")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]+:)([^\s@/]+)(@)")
_API_KEYS = re.compile(
    r"\b(?:"
    r"gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|sk_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|AIza[0-9A-Za-z\-_]{35}"
    r"|ops_[0-9a-f]{8}_[A-Za-z0-9_\-]{20,}"
    r"|ofk_[0-9a-f]{8}_[A-Za-z0-9_\-]{20,}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
    r")"
)
_ASSIGNMENT = re.compile(
    r"(?i)\b((?:api[_-]?key|access[_-]?token|auth[_-]?token|secret|password|passwd|token)"
    r"\s*[=:]\s*[\"']?)([^\s\"',;]{6,})"
)
_CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
# What the patterns above need, lower-cased: each cannot match without one of these literals
# (`_` stands for the key prefixes and assignments written with one), or, for URL passwords,
# both `://` and `@`, or, for card numbers, 13 digits with at most one space or dash between.
_NEEDED = (
    "private key",
    "bearer",
    "_",
    "xox",
    "akia",
    "aiza",
    "eyj",
    "apikey",
    "api-key",
    "token",
    "secret",
    "passw",
)
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){12}")
_DIGITS = b"0123456789"


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _may_hold_secret(text: str) -> bool:
    """False when no pattern can match the text, at a fraction of the cost of running them.
    Decided for ASCII text only, where case-insensitive matching is lower-casing; any other
    text is scanned in full."""
    if not text.isascii():
        return True
    lowered = text.lower()
    for needed in _NEEDED:
        if needed in lowered:
            return True
    if "://" in text and "@" in text:
        return True
    if len(text) < 13:
        return False
    raw = text.encode()  # ASCII: a byte per character; counting digits is cheaper than searching
    if len(raw) - len(raw.translate(None, _DIGITS)) < 13:
        return False
    return _DIGIT_RUN.search(text) is not None


def scrub(text: str) -> tuple[str, Counter]:
    """The text with every secret-looking value replaced, and how many of each kind."""
    counts: Counter = Counter()
    if not text or not _may_hold_secret(text):
        return text, counts

    def replace(kind: str):
        def sub(match: re.Match) -> str:
            counts[kind] += 1
            return f"[REDACTED:{kind}]"

        return sub

    text = _PRIVATE_KEY.sub(replace("private_key"), text)
    text = _BEARER.sub(replace("bearer_token"), text)

    def url_password(match: re.Match) -> str:
        counts["url_password"] += 1
        return f"{match.group(1)}[REDACTED:url_password]{match.group(3)}"

    text = _URL_PASSWORD.sub(url_password, text)
    text = _API_KEYS.sub(replace("api_key"), text)

    def assignment(match: re.Match) -> str:
        if match.group(2).startswith("[REDACTED:"):
            return match.group(0)
        counts["api_key"] += 1
        return f"{match.group(1)}[REDACTED:api_key]"

    text = _ASSIGNMENT.sub(assignment, text)

    def card(match: re.Match) -> str:
        digits = re.sub(r"[ -]", "", match.group(0))
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            counts["card_number"] += 1
            return "[REDACTED:card_number]"
        return match.group(0)

    text = _CARD.sub(card, text)
    return text, counts


def scrub_value(value, counts: Counter):
    """Scrub strings inside any JSON-like value, adding to `counts`."""
    if isinstance(value, str):
        if not _may_hold_secret(value):
            return value
        clean, found = scrub(value)
        counts.update(found)
        return clean
    if isinstance(value, dict):
        return {key: scrub_value(item, counts) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_value(item, counts) for item in value]
    return value
