"""PostgreSQL client programs (pg_dump, pg_restore, pg_amcheck), found and run safely.

Debian puts only wrappers for some programs on PATH (pg_amcheck is not among them), so binaries
are looked up in PG_BIN_DIR, then `pg_config --bindir`, then the newest /usr/lib/postgresql/*/bin,
then PATH. A program runs in its own process group and is polled: a cancellation request or the
time limit kills the whole group, so a drill never leaves a pg_restore running behind it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

from django.conf import settings


class Canceled(Exception):
    """The run was canceled by an operator (or the process was asked to stop)."""


class CommandFailed(RuntimeError):
    pass


@cache
def _bin_dirs() -> list[Path]:
    dirs: list[Path] = []
    if getattr(settings, "PG_BIN_DIR", ""):
        dirs.append(Path(settings.PG_BIN_DIR))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            if out:
                dirs.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass

    def version(path: Path) -> tuple[int, ...]:
        try:
            return tuple(int(part) for part in path.parent.name.split("."))
        except ValueError:
            return (0,)

    dirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    return dirs


def binary(name: str) -> str:
    for directory in _bin_dirs():
        candidate = directory / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise CommandFailed(f"{name} not found (set PG_BIN_DIR to the PostgreSQL client bin directory)")


def run(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> str:
    """Run a program to completion and return its stdout; CommandFailed with the tail of its
    stderr on a non-zero exit, Canceled when `should_cancel` says so, TimeoutError after
    `timeout` seconds. The program and its children are killed in every abnormal case."""
    timeout = timeout or settings.DRILL_COMMAND_TIMEOUT_SECONDS
    process = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        text=True,
    )
    deadline = time.monotonic() + timeout
    last_cancel_check = 0.0
    try:
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                if now > deadline:
                    raise TimeoutError(
                        f"{Path(args[0]).name} did not finish within {timeout:.0f} s"
                    ) from None
                if should_cancel and now - last_cancel_check >= 1.0:
                    last_cancel_check = now
                    if should_cancel():
                        raise Canceled(f"canceled while {Path(args[0]).name} was running") from None
    except BaseException:
        _kill_group(process)
        raise
    if process.returncode != 0:
        tail = "\n".join((stderr or "").strip().splitlines()[-8:])
        how = (
            f"killed by signal {-process.returncode}"
            if process.returncode < 0
            else f"exit {process.returncode}"
        )
        raise CommandFailed(f"{Path(args[0]).name} failed ({how}): {tail}".rstrip(": "))
    return stdout


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError):
        process.communicate(timeout=10)
