# opsportal image: one image for web (gunicorn, the default command), worker and beat (their
# commands are in compose.yaml).
# Not exercised on the build machine (no Docker engine there); kept consistent with settings.py.
FROM python:3.11-slim

# PYTHONPATH: settings.BASE_DIR must be this source tree, because templates/ and static/ live
# beside the packages and are not part of the installed distribution; so /app is imported before
# the copy `pip install .` puts in site-packages.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    OPSPORTAL_VAR_DIR=/app/var \
    EVIDENCE_DIR=/data/evidence \
    BACKUP_DIR=/data/backups \
    PG_BIN_DIR=/usr/lib/postgresql/15/bin \
    BIND=0.0.0.0:8000 \
    WEB_CONCURRENCY=2

# PostgreSQL 15 client programs for DR drills and backups (pg_dump, pg_restore, pg_amcheck),
# matching the server in compose.yaml.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client-15 \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 opsportal \
 && useradd --system --uid 10001 --gid opsportal --home-dir /app --no-create-home \
      --shell /usr/sbin/nologin opsportal

WORKDIR /app

# Dependencies (and the packages) first, so that template or static edits reuse this layer.
COPY pyproject.toml ./
COPY opsportal ./opsportal
COPY apps ./apps
RUN pip install . && rm -rf build ./*.egg-info

COPY manage.py gunicorn.conf.py ./
COPY templates ./templates
COPY static ./static

# Hashed, compressed static files for whitenoise's manifest storage (DEBUG off). The secret and
# hosts here exist only so settings load at build time; they are not in the final environment.
RUN DEBUG=false SECRET_KEY=collectstatic-only-build-time-key-not-used-at-runtime \
      ALLOWED_HOSTS=build python manage.py collectstatic --noinput \
 && mkdir -p /app/var /data/evidence /data/backups \
 && chown -R opsportal:opsportal /app/var /data

USER opsportal
EXPOSE 8000
VOLUME ["/data/evidence"]

# The web command (worker and beat get their own in compose.yaml). gunicorn.conf.py reads BIND
# and WEB_CONCURRENCY and marks exited workers dead for the metrics. /metrics merges the workers
# through PROMETHEUS_MULTIPROC_DIR, set here for the web process only (default /tmp/prometheus)
# and emptied at every start: samples left by an earlier run would be added to the new totals.
# Runtime needs SECRET_KEY, ALLOWED_HOSTS, DATABASE_URL and REDIS_URL at least; see
# docs/configuration.md.
CMD ["sh", "-c", "export PROMETHEUS_MULTIPROC_DIR=\"${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus}\" && rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && exec gunicorn opsportal.wsgi:application --config gunicorn.conf.py"]
