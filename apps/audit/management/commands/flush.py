"""`flush`, which may empty the append-only audit log only on a test database.

Django's test runner flushes the database after every transactional test; on PostgreSQL the audit
table's TRUNCATE trigger refuses that. On databases named `test_*` this command lifts the trigger
for the flush; on any other database it behaves exactly like Django's and the trigger stands.
"""

from django.core.management.commands.flush import Command as DjangoFlushCommand
from django.db import DEFAULT_DB_ALIAS, connections

TRIGGER = "audit_event_no_truncate"


class Command(DjangoFlushCommand):
    def handle(self, **options):
        connection = connections[options.get("database", DEFAULT_DB_ALIAS)]
        is_test_db = str(connection.settings_dict["NAME"]).startswith("test_")
        if connection.vendor != "postgresql" or not is_test_db:
            return super().handle(**options)
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE audit_auditevent DISABLE TRIGGER {TRIGGER}")
        try:
            return super().handle(**options)
        finally:
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE audit_auditevent ENABLE TRIGGER {TRIGGER}")
