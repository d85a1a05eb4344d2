"""The Celery application, and the request-id propagation shared by every task.

The publishing side puts the current request id into the message headers; the worker side puts it
back into the context before the task runs, so task logs and audit events carry it.
"""

import os

from celery import Celery, signals
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
# The embedded broker (no REDIS_URL): kombu's filesystem transport with atomic writes.
TRANSPORT_ALIASES.setdefault("opsfs", "opsportal.fs_transport:Transport")

app = Celery("opsportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

_tokens: dict[str, object] = {}


@signals.before_task_publish.connect
def _add_request_id_header(headers=None, **_kwargs):
    from opsportal.context import current_request_id

    if headers is not None and "request_id" not in headers:
        headers["request_id"] = current_request_id()


@signals.task_prerun.connect
def _restore_request_id(task_id=None, task=None, **_kwargs):
    from opsportal.context import new_request_id, set_request_id

    request_id = getattr(task.request, "request_id", None) or new_request_id()
    _tokens[task_id] = set_request_id(request_id)


@signals.task_postrun.connect
def _clear_request_id(task_id=None, state=None, task=None, **_kwargs):
    from opsportal.context import reset_request_id

    token = _tokens.pop(task_id, None)
    if token is not None:
        reset_request_id(token)
    from apps.core.services import record_task_outcome

    record_task_outcome(task.name, state or "UNKNOWN")


@signals.beat_init.connect
def _first_heartbeat(sender=None, **_kwargs):
    """Beat's first heartbeat goes out at start, not one interval later, so /readyz turns green
    as soon as beat, broker and a worker are all up."""
    sender.app.send_task("core.beat_heartbeat")
