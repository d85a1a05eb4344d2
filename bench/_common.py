"""Shared setup for the benchmarks in bench/ (imported by each script; not a benchmark itself).

Every benchmark gets its own PostgreSQL database, `opsportal_bench`, recreated from scratch with
scripts/pg_setup.sh and migrated the way production is: `manage.py migrate` connects as the table
owner (DATABASE_MIGRATE_URL), the portal then runs as the least-privilege role (DATABASE_URL), so
row-level security is in force exactly as in production. Nothing here touches any other database.
"""

from __future__ import annotations

import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
RESULTS_DIR = BENCH_DIR / "results"
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable

BENCH_DB = "opsportal_bench"
PG_HOSTPORT = os.environ.get("BENCH_PG_HOSTPORT", "127.0.0.1:5432")
OWNER_URL = f"postgresql://opsportal_owner@{PG_HOSTPORT}/{BENCH_DB}"
APP_URL = f"postgresql://opsportal_app@{PG_HOSTPORT}/{BENCH_DB}"
# Benchmarks keep their files (collected static files, file cache, evidence) away from var/test,
# which the test suite may be using at the same time.
BENCH_VAR_DIR = REPO / "var" / "bench"

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def production_env(database_url: str = APP_URL) -> dict[str, str]:
    """The environment of a production-mode portal process pointed at the bench database."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "opsportal.settings",
            "DEBUG": "false",
            "SECRET_KEY": env.get("SECRET_KEY") or "bench-only-not-secret",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": database_url,
            "DATABASE_MIGRATE_URL": OWNER_URL,
            "OPSPORTAL_VAR_DIR": str(BENCH_VAR_DIR),
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def run(
    label: str, cmd: list[str], env: dict[str, str] | None = None, timeout: float = 300
) -> None:
    """Run a setup step; on failure print its output and exit non-zero (setup failed)."""
    started = time.perf_counter()
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n", file=sys.stderr)
        sys.exit(f"setup failed: {' '.join(cmd)} exited {proc.returncode}")
    log(f"{label}: {time.perf_counter() - started:.1f} s")


def setup_database() -> None:
    """Recreate opsportal_bench and migrate it as production does (owner migrates)."""
    BENCH_VAR_DIR.mkdir(parents=True, exist_ok=True)
    run(
        f"pg_setup.sh {BENCH_DB} --fresh",
        [str(REPO / "scripts" / "pg_setup.sh"), BENCH_DB, "--fresh"],
    )
    run(
        "manage.py migrate (as opsportal_owner)",
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"],
        env=production_env(),
    )


def configure_django(database_url: str = APP_URL) -> None:
    """Point this process at the bench database (production mode) and set Django up."""
    os.environ.update(production_env(database_url))
    import django

    django.setup()


def machine() -> dict:
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": load,
    }


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def write_result(name: str, result: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **result,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=False, default=str) + "\n")
    log(f"result written to {path.relative_to(REPO)}")
    return path


_SAVEPOINT_ID = re.compile(r'"?s\d+_x\d+"?')
_TABLE = re.compile(r'(?:FROM|INTO|UPDATE)\s+"(\w+)"')


def statement_label(sql: str) -> str:
    """A short name for a SQL statement, for per-statement timing tables."""
    sql = _SAVEPOINT_ID.sub("sp", sql.strip())
    if "set_config('opsportal." in sql:
        return "SELECT set_config (RLS scope switch)"
    verb = sql.split(None, 1)[0].upper()
    if verb in {"SAVEPOINT", "RELEASE", "ROLLBACK"}:
        return verb
    table = _TABLE.search(sql)
    label = f"{verb} {table.group(1) if table else '?'}"
    if "FOR UPDATE" in sql:
        label += " FOR UPDATE"
    return label


if __name__ == "__main__":  # `make bench` runs every bench/*.py; this one is a helper
    print("bench/_common.py: shared setup for the benchmarks, nothing to run")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text().splitlines()[-lines:])
    except OSError:
        return ""


WRK_ERROR_KEYS = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")


def wrk_result(proc: subprocess.CompletedProcess) -> dict:
    """The figures our wrk Lua scripts print as one `WRKJSON {...}` line."""
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    raw = json.loads(line.removeprefix("WRKJSON "))
    return {
        "requests": raw["requests"],
        "seconds": raw["duration_us"] / 1e6,
        "errors": sum(raw[k] for k in WRK_ERROR_KEYS),
        "error_detail": {k: raw[k] for k in WRK_ERROR_KEYS},
        "p50_ms": raw["p50_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000 if "max_us" in raw else None,
        "latencies": None,
    }
