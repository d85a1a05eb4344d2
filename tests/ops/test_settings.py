"""Production mode: refuses to start without its secrets, and passes `check --deploy`."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "SECURE_SSL_REDIRECT"}
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_mode_refuses_to_start_without_secret_key_and_hosts():
    result = _manage("check")
    assert result.returncode != 0
    assert "DEBUG is off: set SECRET_KEY and ALLOWED_HOSTS" in result.stderr


def test_makemigrations_check_runs_on_a_bare_checkout_and_finds_nothing_missing():
    result = _manage("makemigrations", "--check", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout


def test_check_deploy_is_clean_in_production_mode():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        SECRET_KEY="x" * 60 + "-unique-production-like-secret",
        ALLOWED_HOSTS="ops.example.com",
        FIELD_ENCRYPTION_KEYS="Fj2nLZc7Qe2tkOv2S0u5bVYl2uWQmPUEdEIP6_0tV2k=",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_warns_without_an_encryption_key_and_rejects_a_bad_one():
    production = {"SECRET_KEY": "x" * 60 + "-unique", "ALLOWED_HOSTS": "ops.example.com"}
    unset = _manage("check", "--deploy", "--fail-level", "WARNING", **production)
    assert unset.returncode != 0 and "opsportal.W001" in unset.stderr + unset.stdout
    bad = _manage("check", "--deploy", **production, FIELD_ENCRYPTION_KEYS="not-a-key")
    assert bad.returncode != 0 and "opsportal.E001" in bad.stderr + bad.stdout
