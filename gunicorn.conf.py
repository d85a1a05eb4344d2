"""gunicorn settings picked up by default (`gunicorn opsportal.wsgi`).

With several workers, Prometheus metrics must be aggregated across processes: when
PROMETHEUS_MULTIPROC_DIR is set, each worker writes its samples there and /metrics merges them.
"""

import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
accesslog = "-"


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
