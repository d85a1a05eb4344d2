"""Drill fixtures: drills on the test database (the portal's own), and a check that no test
leaves a shadow database behind."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from apps.drills import services
from apps.drills.models import Drill, DrillKind
from apps.drills.pg_backend import SHADOW_PREFIX
from apps.drills.targets import portal_target


def shadow_databases() -> list[str]:
    if connection.vendor != "postgresql":
        return []
    with psycopg.connect(portal_target().conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [SHADOW_PREFIX]
        ).fetchall()
    return [row[0] for row in rows]


@pytest.fixture
def no_shadow_left_behind():
    before = set(shadow_databases())
    yield
    left = set(shadow_databases()) - before
    assert not left, f"shadow databases left behind: {sorted(left)}"


@pytest.fixture
def backup_dir(tmp_path, settings):
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


@pytest.fixture
def make_drill(tenant, backup_dir):
    def make(name: str = "portal-restore", kind: str = DrillKind.BACKUP_RESTORE, **fields) -> Drill:
        dsn = fields.pop("dsn", None)
        return services.save_drill(
            Drill(tenant=tenant, name=name, kind=kind, **fields), dsn=dsn, may_target_portal=True
        )

    return make
