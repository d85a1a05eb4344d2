"""Server-sent events for bulk-evaluation clients (OFREP ADR 0008).

A bulk answer advertises `refreshConnections` (and, for clients written against the ADR's
earlier draft, the same list as `eventStreams`): an SSE URL carrying a signed, opaque channel
token for the key's environment. The stream sends `refetchEvaluation` (with the configuration
version as `id` and `etag`) whenever the environment changes, so clients refetch at once instead
of waiting for their next poll.

Long-lived connections must not hold a web worker's thread, so the stream is an async view served
by the ASGI application (`uvicorn opsportal.asgi:application`, the "events" process); under WSGI
it answers 503 pointing there. In each events process one watcher task per environment with
listeners polls the environment's snapshot (apps/flags/runtime.py: one cache read per poll
interval) and wakes every listener of that environment; listeners cost no database or cache
round trip of their own. A revoked key ends its streams at the next change.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from apps.flags import runtime

SALT = "opsportal.flags.sse"
KEEP_ALIVE_SECONDS = 15.0
INACTIVITY_DELAY_SECONDS = 120


def channel_token(environment_id: int, prefix: str) -> str:
    """Deterministic, so the bulk answer (and its ETag) does not change from call to call."""
    return signing.Signer(salt=SALT).sign(f"{environment_id}.{prefix}")


def refresh_connections(request: HttpRequest, snapshot: runtime.Snapshot, prefix: str) -> list:
    base = settings.FLAGS_SSE_BASE_URL or f"{request.scheme}://{request.get_host()}"
    token = channel_token(snapshot.environment_id, prefix)
    url = f"{base.rstrip('/')}/ofrep/v1/events?channel={token}"
    return [{"type": "sse", "url": url, "inactivityDelaySec": INACTIVITY_DELAY_SECONDS}]


class _Channel:
    """One environment's version, watched for every listener of this process."""

    def __init__(self, environment_id: int) -> None:
        self.environment_id = environment_id
        self.version: int | None = None
        self.live_keys: set[str] = set()
        self.listeners = 0
        self.changed = asyncio.Condition()
        self.ready = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def watch(self) -> None:
        while self.listeners:
            snapshot = await sync_to_async(runtime.snapshot_for)(self.environment_id)
            version = snapshot.version if snapshot else None
            live_keys = set(snapshot.live_keys) if snapshot else set()
            if (version, live_keys) != (self.version, self.live_keys):
                self.version, self.live_keys = version, live_keys
                async with self.changed:
                    self.changed.notify_all()
            self.ready.set()
            await asyncio.sleep(max(settings.FLAGS_CONFIG_POLL_SECONDS, 0.2))


_channels: dict[int, _Channel] = {}


def _subscribe(environment_id: int) -> _Channel:
    channel = _channels.get(environment_id)
    if channel is None:
        channel = _channels[environment_id] = _Channel(environment_id)
    channel.listeners += 1
    if channel.task is None or channel.task.done():
        channel.task = asyncio.get_running_loop().create_task(channel.watch())
    return channel


def _unsubscribe(channel: _Channel) -> None:
    channel.listeners -= 1
    if channel.listeners <= 0:
        _channels.pop(channel.environment_id, None)


def _event(version: int) -> str:
    data = {"type": "refetchEvaluation", "etag": f'"v{version}"', "lastModified": int(time.time())}
    return f"id: {version}\nevent: message\ndata: {json.dumps(data)}\n\n"


async def _stream(environment_id: int, prefix: str, last_seen: int | None) -> AsyncIterator[str]:
    channel = _subscribe(environment_id)
    try:
        await channel.ready.wait()
        if prefix not in channel.live_keys:
            return
        yield f"retry: 3000\n: environment {environment_id} at v{channel.version}\n\n"
        seen = channel.version
        if last_seen is not None and last_seen != seen:
            yield _event(seen)  # changed while the client was away (Last-Event-ID)
        while True:
            try:
                async with channel.changed:
                    await asyncio.wait_for(channel.changed.wait(), KEEP_ALIVE_SECONDS)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if prefix not in channel.live_keys:
                return  # the key was revoked
            if channel.version != seen:
                seen = channel.version
                yield _event(seen)
    finally:
        _unsubscribe(channel)


def _plain(status: int, detail: str) -> HttpResponse:
    response = HttpResponse(
        json.dumps({"errorDetails": detail}), status=status, content_type="application/json"
    )
    response.ofrep_raw = True
    return response


async def event_stream(request: HttpRequest) -> HttpResponse:
    """GET /ofrep/v1/events?channel=…: `refetchEvaluation` events for one environment."""
    if request.method != "GET":
        return _plain(405, "GET only.")
    if "wsgi.version" in request.META:
        return _plain(503, "Event streams are served by the ASGI events process, not here.")
    try:
        value = signing.Signer(salt=SALT).unsign(request.GET.get("channel", ""))
        environment, prefix = value.split(".", 1)
        environment_id = int(environment)
    except (signing.BadSignature, ValueError):
        return _plain(401, "Unknown channel.")
    snapshot = await sync_to_async(runtime.snapshot_for)(environment_id)
    if snapshot is None or prefix not in snapshot.live_keys:
        return _plain(401, "The key behind this channel was revoked.")
    last_event = request.headers.get("Last-Event-ID", "")
    last_seen = int(last_event) if last_event.isdigit() else None
    response = StreamingHttpResponse(
        _stream(environment_id, prefix, last_seen), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    response.ofrep_raw = True
    return response
