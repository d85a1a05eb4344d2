"""What a drill points at: the portal's own database or an external PostgreSQL DSN.

Connection strings carry passwords, so they are handled here only: a `Target` keeps the full
conninfo for connecting, and everything that is shown or logged uses `label` (the DSN without its
password). Subprocesses get the password through PGPASSWORD, never on their command line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections
from psycopg import conninfo as pg_conninfo


@dataclass(frozen=True)
class Target:
    engine: str  # "postgresql" | "sqlite"
    key: str  # "portal" | "drill:<id>"
    label: str
    conninfo: str = ""
    sqlite_path: Path | None = None
    is_portal: bool = False

    @property
    def dbname(self) -> str:
        if self.engine == "sqlite":
            return self.sqlite_path.name if self.sqlite_path else ""
        return pg_conninfo.conninfo_to_dict(self.conninfo).get("dbname", "")

    def with_dbname(self, dbname: str) -> str:
        return pg_conninfo.make_conninfo(self.conninfo, dbname=dbname)

    def subprocess_args(self, dbname: str | None = None) -> tuple[str, dict[str, str]]:
        """The conninfo for a client program, without secrets, and the environment that carries
        them."""
        params = pg_conninfo.conninfo_to_dict(self.conninfo)
        if dbname:
            params["dbname"] = dbname
        env = {}
        if params.get("password"):
            env["PGPASSWORD"] = str(params.pop("password"))
        if params.get("sslpassword"):
            params.pop("sslpassword")
        return pg_conninfo.make_conninfo(**params), env


def redact(conninfo: str) -> str:
    """postgresql://user@host:port/dbname, never the password."""
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo)
    except Exception:
        return "(unparsable DSN)"
    user = params.get("user", "")
    host = params.get("host", "")
    port = params.get("port", "")
    dbname = params.get("dbname", "")
    hostport = f"{host}:{port}" if port else host
    return f"postgresql://{user + '@' if user else ''}{hostport}/{dbname}"


def validate_dsn(dsn: str) -> str:
    """The DSN normalised to a libpq conninfo; ValidationError naming what is wrong."""
    dsn = (dsn or "").strip()
    if not dsn:
        raise ValidationError({"dsn": "An external target needs a PostgreSQL DSN."})
    if "://" in dsn and not dsn.startswith(("postgresql://", "postgres://")):
        raise ValidationError({"dsn": "Only postgresql:// DSNs are supported."})
    try:
        params = pg_conninfo.conninfo_to_dict(dsn)
    except Exception as exc:  # psycopg raises ProgrammingError for bad conninfo
        # libpq quotes the offending part, which may be a password: keep only its words.
        message = re.sub(r'"[^"]*"', '"..."', str(exc).split("\n")[0])
        raise ValidationError({"dsn": f"Not a valid PostgreSQL DSN: {message}"}) from None
    missing = [key for key in ("host", "dbname") if not params.get(key)]
    if missing:
        raise ValidationError({"dsn": f"The DSN must name {' and '.join(missing)}."})
    port = params.get("port")
    if port and not str(port).isdigit():
        raise ValidationError({"dsn": f"Port {port!r} is not a number."})
    return pg_conninfo.make_conninfo(**params)


def portal_target() -> Target:
    """The portal's own database, reached as the table owner (DATABASE_MIGRATE_URL) because the
    runtime role is subject to row-level security and cannot create databases."""
    default = connections["default"].settings_dict
    if default["ENGINE"] == "django.db.backends.sqlite3":
        path = Path(default["NAME"])
        return Target(
            engine="sqlite", key="portal", label=f"sqlite:{path}", sqlite_path=path, is_portal=True
        )
    import environ

    source = (
        environ.Env.db_url_config(settings.DATABASE_MIGRATE_URL)
        if settings.DATABASE_MIGRATE_URL
        else default
    )
    params = {
        "host": source.get("HOST") or default.get("HOST") or "",
        "port": str(source.get("PORT") or default.get("PORT") or ""),
        "user": source.get("USER") or "",
        "password": source.get("PASSWORD") or "",
        # The live name: under the test runner this is the test database.
        "dbname": default["NAME"],
    }
    conninfo = pg_conninfo.make_conninfo(**{k: v for k, v in params.items() if v})
    return Target(
        engine="postgresql", key="portal", label=redact(conninfo), conninfo=conninfo, is_portal=True
    )


def external_target(conninfo: str, *, key: str) -> Target:
    return Target(engine="postgresql", key=key, label=redact(conninfo), conninfo=conninfo)
