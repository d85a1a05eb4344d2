#!/usr/bin/env bash
# Start web (gunicorn on 127.0.0.1:8000), a Celery worker and Celery beat; Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping web, worker and beat..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 1 20); do  # a warm shutdown lets running tasks finish (acks_late)
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
mkdir -p var
# Request metrics from both gunicorn workers are merged through this folder (fresh each start).
export PROMETHEUS_MULTIPROC_DIR="$PWD/var/prometheus"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
$PY/celery -A opsportal worker --loglevel=INFO --concurrency=2 >var/worker.log 2>&1 & pids+=($!)
$PY/celery -A opsportal beat --loglevel=INFO --pidfile= >var/beat.log 2>&1 & pids+=($!)
$PY/gunicorn opsportal.wsgi:application --config gunicorn.conf.py >var/web.log 2>&1 & pids+=($!)
for _ in $(seq 1 60); do
  curl -fsS "http://${BIND:-127.0.0.1:8000}/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
cat <<MSG

  opsportal is running.
    admin (the dashboard):  http://${BIND:-127.0.0.1:8000}/admin/   (user and password above)
    API docs (OpenAPI):     http://${BIND:-127.0.0.1:8000}/api/docs/
    readiness:              http://${BIND:-127.0.0.1:8000}/readyz
  logs: var/web.log, var/worker.log, var/beat.log. Ctrl-C stops web, worker and beat.

MSG
wait -n "${pids[@]}"
echo "a process exited; see var/*.log"
