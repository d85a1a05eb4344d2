"""The base class for every opsportal task: late acks, bounded retries with backoff and jitter,
and a clean database scope per run (request ids are carried by opsportal.celery's signals)."""

from celery import Task

from apps.tenancy.rls import clear_scope


class OpsTask(Task):
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = (ConnectionError, TimeoutError, OSError)
    max_retries = 5
    retry_backoff = 5
    retry_backoff_max = 600
    retry_jitter = True

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        finally:
            clear_scope()
