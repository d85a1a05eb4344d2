"""Routes read-only selectors to the replica when DATABASE_REPLICA_URL is set.

Only code that asks for it reads from the replica (`opsportal.dbrouter.read_replica()`), because
replication lag must never surprise a write path. Writes always go to default; migrations run on
default and on the throwaway shadow databases of DR drills (never on the replica).
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet


def replica_alias() -> str:
    return "replica" if "replica" in settings.DATABASES else "default"


def read_replica(queryset: QuerySet) -> QuerySet:
    """Return the queryset bound to the replica (or default when there is none)."""
    return queryset.using(replica_alias())


class ReplicaRouter:
    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db != "replica"
