from django.db import migrations


def backfill(apps, schema_editor):
    apps.get_model("irreversible_app", "Widget").objects.filter(name="").update(name="unnamed")


class Migration(migrations.Migration):
    dependencies = [("irreversible_app", "0001_initial")]

    # No reverse code: Django cannot unapply this, and a rollback plan must say so.
    operations = [migrations.RunPython(backfill)]
