"""The delivery engine's moving parts: the one-statement claim (also with two claimers at
once), sending in the task's thread or in threads by how fast receivers answer, the send
deadline inside the lease, tasks that drain several batches, and the HTTP transport."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.alerts import delivery, payloads, sending, services, transport
from apps.alerts.models import Channel, Delivery, DeliveryAttempt, DeliveryStatus
from apps.alerts.policies import ensure_default_policies
from apps.alerts.tasks import deliver
from tests.alerts.conftest import WEBHOOK_SECRET, in_thread, make_channels
from tests.alerts.receivers import start_http_receiver

pytestmark = pytest.mark.django_db


def _raise(tenant, count: int, prefix: str = "k") -> None:
    services.raise_alerts(
        tenant,
        [
            {"source": "ci", "tier": 1, "dedup_key": f"{prefix}{i}", "title": f"Alert {i}"}
            for i in range(count)
        ],
    )


@pytest.fixture
def webhook(tenant, receiver):
    ensure_default_policies(tenant)
    return make_channels(tenant, receiver.url, kinds=("webhook",))["webhook"]


# --- claiming -----------------------------------------------------------------------------------


def test_a_claim_is_one_statement_that_leases_at_most_its_limit(tenant, webhook):
    _raise(tenant, 12)
    with CaptureQueriesContext(connection) as queries:
        batch = delivery.claim(timezone.now(), 5)
    statements = [q["sql"] for q in queries.captured_queries]
    assert statements[0].startswith("WITH") and "FOR UPDATE SKIP LOCKED" in statements[0]
    assert "RETURNING" in statements[0]
    assert len(statements) == 3, "the claim, then the channels (with tenants) and the alerts"
    assert not any("FOR UPDATE" in s for s in statements[1:])
    assert len(batch) == 5 and Delivery.objects.filter(status=DeliveryStatus.SENDING).count() == 5
    oldest = list(Delivery.objects.order_by("next_attempt_at", "id").values_list("id", flat=True))
    assert [d.pk for d in batch] == oldest[:5]
    stored = {d.pk: d for d in Delivery.objects.filter(pk__in=[d.pk for d in batch])}
    for claimed in batch:
        for field in Delivery._meta.concrete_fields:
            assert getattr(claimed, field.attname) == getattr(stored[claimed.pk], field.attname)
        assert claimed.channel == webhook and claimed.channel.tenant == tenant
        assert claimed.alert.dedup_key.startswith("k")
    assert batch[0].lease_until > timezone.now() + timedelta(seconds=60)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_claimers_at_once_get_disjoint_batches_and_the_second_does_not_wait(tenant, webhook):
    _raise(tenant, 30)
    now = timezone.now()
    claimed, release = threading.Event(), threading.Event()

    def claim_and_hold():
        with transaction.atomic():
            batch = delivery.claim(now, 20)
            claimed.set()
            release.wait(10)
        return [d.pk for d in batch]

    first, first_out = in_thread(claim_and_hold)
    assert claimed.wait(10), first_out
    started = time.monotonic()
    second, second_out = in_thread(lambda: [d.pk for d in delivery.claim(now, 20)])
    second.join(10)
    waited = time.monotonic() - started
    release.set()
    first.join(10)
    assert "error" not in first_out and "error" not in second_out, (first_out, second_out)
    mine, theirs = first_out["result"], second_out["result"]
    oldest = list(Delivery.objects.order_by("next_attempt_at", "id").values_list("id", flat=True))
    assert mine == oldest[:20] and sorted(theirs) == oldest[20:]
    assert waited < 3, f"the second claimer skipped the locked rows instead of waiting ({waited})"
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SENDING}
    assert delivery.claim(now, 20) == [], "every due row is leased"
    after_lease = now + timedelta(seconds=delivery.lease_seconds() + 1)
    assert len(delivery.claim(after_lease, 50)) == 30, "expired leases are claimed again"


# --- sending: in the task's thread or in threads --------------------------------------------------


@pytest.fixture
def spy(monkeypatch):
    """Where each channel's batch was sent: (channel name, in the task's thread, from index)."""
    calls: list[tuple[str, bool, int]] = []
    original = sending._send_channel

    def recording(channel_batch, **kwargs):
        calls.append(
            (
                channel_batch.plan.deliveries[0].channel.name,
                threading.current_thread() is threading.main_thread(),
                len(channel_batch.results),
            )
        )
        return original(channel_batch, **kwargs)

    monkeypatch.setattr(sending, "_send_channel", recording)
    monkeypatch.setattr(sending, "_fast_streak", {})
    monkeypatch.setattr(sending, "FAST_RECEIVER_MS", 100)  # a loaded CI machine is not slow
    return calls


def test_fast_receivers_are_sent_in_the_task_thread_and_slow_ones_in_threads(tenant, spy):
    ensure_default_policies(tenant)
    first, second = start_http_receiver(), start_http_receiver()
    try:
        for name, receiver in (("a-hook", first), ("b-hook", second)):
            services.save_channel(
                Channel(tenant=tenant, name=name, kind="webhook", url=f"{receiver.url}/hook"),
                secret=WEBHOOK_SECRET,
            )

        def batch(prefix: str, alerts: int) -> set[tuple[str, bool, int]]:
            spy.clear()
            _raise(tenant, alerts, prefix)
            assert delivery.deliver_due() == {"delivered": 2 * alerts}
            return set(spy)

        assert batch("new", 6) == {("a-hook", False, 0), ("b-hook", False, 0)}, "unknown: threads"
        assert batch("known", 6) == {("a-hook", True, 0), ("b-hook", True, 0)}, "fast: inline"
        first.mode, first.delay = "slow", 0.25
        # a-hook answers slowly: after its first request, the rest of its batch and b-hook,
        # still waiting, go to threads.
        assert batch("turns-slow", 3) == {
            ("a-hook", True, 0),
            ("a-hook", False, 1),
            ("b-hook", False, 0),
        }
        started = time.monotonic()
        assert batch("slow", 3) == {("a-hook", False, 0), ("b-hook", True, 0)}
        assert time.monotonic() - started < 3 * 0.25 + 1
        assert len(first.distinct_keys()) == len(second.distinct_keys()) == 18
        assert not Delivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists()
    finally:
        first.server.shutdown()
        second.server.shutdown()


def test_a_batch_for_one_channel_is_sent_in_the_task_thread(tenant, webhook, receiver, spy):
    _raise(tenant, 3)
    assert delivery.deliver_due() == {"delivered": 3}
    assert spy == [("webhook", True, 0)]


def test_what_a_batch_cannot_start_before_its_deadline_is_released_unsent(
    tenant, webhook, receiver, monkeypatch
):
    _raise(tenant, 3)
    monkeypatch.setattr(delivery, "send_deadline", lambda claimed_at: claimed_at)
    before = timezone.now()
    assert delivery.deliver_due() == {"released": 3}
    assert receiver.processed() == [] and not DeliveryAttempt.objects.exists()
    for row in Delivery.objects.all():
        assert row.status == DeliveryStatus.RETRYING and row.attempts == 0
        assert row.lease_until is None and before <= row.next_attempt_at <= timezone.now()
    monkeypatch.undo()
    assert delivery.deliver_due() == {"delivered": 3}
    assert len(receiver.distinct_keys()) == 3


def test_the_send_deadline_leaves_the_last_request_time_to_finish_within_the_lease(settings):
    settings.ALERT_DELIVERY_TIMEOUT_SECONDS = 5.0
    settings.ALERT_BREAKER_FAILURE_THRESHOLD = 5
    assert delivery.lease_seconds() == 65
    assert delivery.send_deadline(100.0) == 100.0 + 65 - 5 - 10


def test_a_deliver_task_sends_as_many_batches_as_its_ids_fill(tenant, webhook, monkeypatch):
    monkeypatch.setattr(delivery, "BATCH_SIZE", 2)
    _raise(tenant, 10)
    assert deliver.run(delivery_ids=[1, 2, 3, 4, 5]) == {"delivered": 6}, "3 batches of 2"
    assert deliver.run(delivery_ids=list(range(20))) == {"delivered": 4}, "no more due: it stops"
    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 10


# --- the HTTP transport -------------------------------------------------------------------------


def _outgoing(url: str) -> payloads.Outgoing:
    return payloads.Outgoing(kind="webhook", url=url, body=b"{}", headers={"X-Test": "1"})


def test_requests_reuse_a_kept_alive_connection(receiver):
    pool = transport.Pool(5)
    try:
        answers = [pool.post(f"{receiver.url}/hook", b"{}", {"X-N": str(n)}) for n in range(5)]
    finally:
        pool.close()
    assert [a.status_code for a in answers] == [200] * 5
    assert len(receiver.processed()) == 5 and len(receiver.peers) == 1


def test_a_connection_the_receiver_closed_while_idle_is_not_reused():
    peers = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 0.2  # closes a kept-alive connection idle for longer

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            peers.append(self.client_address)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pool = transport.Pool(5)
    url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        assert pool.post(url, b"{}", {}).status_code == 200
        time.sleep(0.6)
        assert pool.post(url, b"{}", {}).status_code == 200
    finally:
        pool.close()
        server.shutdown()
    assert len(set(peers)) == 2


def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_receivers_are_verified_as_httpx_verifies_them(tmp_path, receiver, monkeypatch):
    cert_file, key_file = _self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    server = ThreadingHTTPServer(("127.0.0.1", 0), receiver.server.RequestHandlerClass)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_port}/hook"
    try:
        result = sending._send_http(_outgoing(url), timezone.now())
        assert result.outcome == "failed" and "CERTIFICATE_VERIFY_FAILED" in result.error
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # trusted the way httpx reads it
        pool = transport.Pool(5)
        assert pool.post(url, b"{}", {}).status_code == 200
        pool.close()
    finally:
        server.shutdown()
    assert len(receiver.processed("/hook")) == 1


def test_with_a_proxy_in_the_environment_requests_go_through_httpx(receiver, monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)
    assert not transport.proxied()
    sent = []

    class Client:
        def post(self, url, content, headers):
            sent.append(url)
            return transport.Response(204, {}, b"")

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.com:3128")
    monkeypatch.setattr(sending, "_pool", None)
    monkeypatch.setattr(sending, "http_client", Client)
    assert transport.proxied()
    result = sending._send_http(_outgoing(f"{receiver.url}/hook"), timezone.now())
    assert result.outcome == "delivered" and sent == [f"{receiver.url}/hook"]
    assert receiver.processed() == []
