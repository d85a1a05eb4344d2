#!/usr/bin/env bash
# Create the two PostgreSQL roles and a database: opsportal_owner owns the tables and runs
# migrations; opsportal_app is what the portal connects as (owns nothing, so RLS applies).
# Usage: scripts/pg_setup.sh DBNAME [--fresh]. Needs a superuser connection (PG_ADMIN_URL).
set -euo pipefail
db="${1:?database name}"; fresh="${2:-}"
admin="${PG_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
psql() { command psql "$admin" -v ON_ERROR_STOP=1 -qAt "$@"; }
psql -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'opsportal_owner') THEN
    CREATE ROLE opsportal_owner LOGIN CREATEDB NOSUPERUSER NOCREATEROLE; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'opsportal_app') THEN
    CREATE ROLE opsportal_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; END IF;
END \$\$;"
psql -c "GRANT opsportal_app TO opsportal_owner"
if [ "$fresh" = "--fresh" ]; then
  psql -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)"
  psql -c "DROP DATABASE IF EXISTS \"test_$db\" WITH (FORCE)"
fi
if [ -z "$(psql -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
  psql -c "CREATE DATABASE \"$db\" OWNER opsportal_owner"
fi
command psql "${admin%/*}/$db" -v ON_ERROR_STOP=1 -qAt \
  -c "ALTER SCHEMA public OWNER TO opsportal_owner" -c "REVOKE CREATE ON SCHEMA public FROM PUBLIC"
# The template DR drills create their shadow databases from: template0 plus amcheck (in its own
# schema, executable by the owner role) so pg_amcheck can verify a restored copy without the
# drill needing superuser. Idempotent; shared by every database of the cluster.
tmpl=opsportal_shadow_template
if [ -z "$(psql -c "SELECT 1 FROM pg_database WHERE datname = '$tmpl'")" ]; then
  psql -c "CREATE DATABASE $tmpl TEMPLATE template0"
  command psql "${admin%/*}/$tmpl" -v ON_ERROR_STOP=1 -qAt \
    -c "CREATE SCHEMA IF NOT EXISTS amcheck" \
    -c "CREATE EXTENSION IF NOT EXISTS amcheck SCHEMA amcheck" \
    -c "GRANT USAGE ON SCHEMA amcheck TO opsportal_owner" \
    -c "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA amcheck TO opsportal_owner"
  psql -c "ALTER DATABASE $tmpl WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
fi
