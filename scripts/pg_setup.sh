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
