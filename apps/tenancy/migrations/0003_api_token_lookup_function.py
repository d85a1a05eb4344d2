"""The API token lookup as a SECURITY DEFINER function.

Token authentication has to find a token before it knows the tenant, which used to mean
switching the row-level-security scope to "all tenants" and back around one query (three
statements per API request). The function reads `tenancy_apitoken` by prefix as its owner (the
table owner, whom RLS does not restrict) and nothing else: no writes, no scope change, no other
table. EXECUTE is revoked from PUBLIC here and granted to the app role by the post-migrate hook
(`apps.tenancy.rls.apply_row_level_security`), which knows the role. PostgreSQL only: SQLite has
no row-level security and looks the token up through the ORM.
"""

from django.db import migrations

FUNCTION = "opsportal_api_token"


def _schema(schema_editor) -> str:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        return schema_editor.quote_name(cursor.fetchone()[0])


def create_function(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema = _schema(schema_editor)
    schema_editor.execute(
        f"CREATE OR REPLACE FUNCTION {schema}.{FUNCTION}(p_prefix text) "
        f"RETURNS SETOF {schema}.tenancy_apitoken "
        "LANGUAGE sql STABLE SECURITY DEFINER "
        f"SET search_path = {schema}, pg_temp "
        # pg_catalog's operator by name: no `=` defined in a writable schema can be picked up.
        f"AS $$ SELECT * FROM {schema}.tenancy_apitoken "
        "WHERE prefix OPERATOR(pg_catalog.=) p_prefix $$"
    )
    schema_editor.execute(f"REVOKE ALL ON FUNCTION {schema}.{FUNCTION}(text) FROM PUBLIC")


def drop_function(apps, schema_editor):
    """Roll the code back with it: until then, `api_token_by_prefix` falls back to the ORM."""
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {_schema(schema_editor)}.{FUNCTION}(text)")


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0002_alter_tenant_time_zone")]

    operations = [migrations.RunPython(create_function, drop_function)]
