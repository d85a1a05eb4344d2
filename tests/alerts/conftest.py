from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.alerts.models import Channel, ChannelKind
from apps.alerts.services import save_channel
from tests.alerts.receivers import start_http_receiver, start_smtp_receiver

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
WEBHOOK_SECRET = "whsec-test-0123456789abcdef"


@pytest.fixture
def receiver():
    server = start_http_receiver()
    yield server
    server.server.shutdown()


@pytest.fixture
def smtp():
    mailbox = start_smtp_receiver()
    yield mailbox
    mailbox.stop()


def make_channels(tenant, base_url: str, kinds=("slack", "pagerduty", "webhook")) -> dict:
    channels = {}
    for kind in kinds:
        if kind == ChannelKind.SLACK:
            channel, _ = save_channel(
                Channel(tenant=tenant, name="slack", kind=kind), secret=f"{base_url}/slack/T0/B0/x"
            )
        elif kind == ChannelKind.PAGERDUTY:
            channel, _ = save_channel(
                Channel(tenant=tenant, name="pagerduty", kind=kind, url=f"{base_url}/pagerduty"),
                secret=ROUTING_KEY,
            )
        elif kind == ChannelKind.WEBHOOK:
            channel, _ = save_channel(
                Channel(tenant=tenant, name="webhook", kind=kind, url=f"{base_url}/hook"),
                secret=WEBHOOK_SECRET,
            )
        else:
            channel, _ = save_channel(
                Channel(tenant=tenant, name="email", kind=kind, emails="oncall@example.com")
            )
        channels[kind] = channel
    return channels


def in_thread(target, *args):
    """Start `target(*args)` in a thread of its own (so with a database connection of its own);
    returns the thread and a dict that gets its "result" or "error"."""
    out: dict = {}

    def run():
        try:
            out["result"] = target(*args)
        except BaseException as exc:  # re-raised by the test's assertions
            out["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out
