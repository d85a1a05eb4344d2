"""Data migration: the default rule catalog (apps/compliance/catalog/default_rules.yaml).

Separate from the schema migration. Loading is idempotent (create or update, never delete), so
reversing leaves the rules in place: runs and violations may already refer to them.
"""

from django.db import migrations


def load_default_catalog(apps, schema_editor):
    from apps.compliance.rule_catalog import DEFAULT_CATALOG, load_catalog, read_catalog

    load_catalog(read_catalog(DEFAULT_CATALOG), apps.get_model("compliance", "Rule"))


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial")]

    operations = [migrations.RunPython(load_default_catalog, migrations.RunPython.noop)]
