"""Data migration: the system chain exists from the start (tenant chains are made on demand)."""

from django.db import migrations


def create_system_chain(apps, schema_editor):
    AuditChain = apps.get_model("audit", "AuditChain")
    AuditChain.objects.get_or_create(key="system", defaults={"last_seq": 0, "last_hash": "0" * 64})


def remove_system_chain(apps, schema_editor):
    AuditChain = apps.get_model("audit", "AuditChain")
    AuditChain.objects.filter(key="system", last_seq=0).delete()


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_trigger")]

    operations = [migrations.RunPython(create_system_chain, remove_system_chain)]
