#!/usr/bin/env bash
# Start web (gunicorn on 127.0.0.1:8000), the flags event stream (uvicorn on 127.0.0.1:8001), a
# Celery worker and Celery beat; Ctrl-C stops all four.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping web, events, worker and beat..."
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
EVENTS_BIND="${EVENTS_BIND:-127.0.0.1:8001}"
# Request metrics from both gunicorn workers are merged through this folder (fresh each start).
export PROMETHEUS_MULTIPROC_DIR="$PWD/var/prometheus"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
$PY/celery -A opsportal worker --loglevel=INFO --concurrency=2 >var/worker.log 2>&1 & pids+=($!)
$PY/celery -A opsportal beat --loglevel=INFO --pidfile= >var/beat.log 2>&1 & pids+=($!)
# Bulk OFREP answers send clients to the events process for change notifications (SSE).
export FLAGS_SSE_BASE_URL="${FLAGS_SSE_BASE_URL:-http://${EVENTS_BIND:-127.0.0.1:8001}}"
$PY/gunicorn opsportal.wsgi:application --config gunicorn.conf.py >var/web.log 2>&1 & pids+=($!)
$PY/uvicorn opsportal.asgi:application --host "${EVENTS_BIND%:*}" --port "${EVENTS_BIND##*:}" \
  --no-access-log >var/events.log 2>&1 & pids+=($!)
for _ in $(seq 1 60); do
  curl -fsS "http://${BIND:-127.0.0.1:8000}/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done
cat <<MSG

  opsportal is running.
    admin (the dashboard):  http://${BIND:-127.0.0.1:8000}/admin/   (user and password above)
    API docs (OpenAPI):     http://${BIND:-127.0.0.1:8000}/api/docs/
    readiness:              http://${BIND:-127.0.0.1:8000}/readyz
    OFREP (feature flags):  http://${BIND:-127.0.0.1:8000}/ofrep/v1/evaluate/flags  (key above)
  logs: var/web.log, var/events.log, var/worker.log, var/beat.log. Ctrl-C stops them all.

MSG
wait -n "${pids[@]}"
echo "a process exited; see var/*.log"
