"""Real receivers on 127.0.0.1 for delivery tests: an HTTP server (webhook, Slack and PagerDuty
paths) that can fail on purpose, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class Receiver:
    """`mode`: "ok"; "gone" (404); "throttled" (429 with Retry-After: 30); "down" (503 for
    everything); "flaky" (the first request for each Idempotency-Key fails, alternately before
    and after processing it: 50 % of requests fail); "slow" (ok, after `delay` seconds).
    `peers` holds the client address of every connection that sent a request."""

    mode: str = "ok"
    delay: float = 0.2
    peers: set = field(default_factory=set)
    requests: list[Received] = field(default_factory=list)
    hits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen_keys: Counter = field(default_factory=Counter)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def processed(self, path_prefix: str = "") -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def distinct_keys(self, path_prefix: str = "") -> set[str]:
        return {r.headers.get("idempotency-key", "") for r in self.processed(path_prefix)}

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if self.mode == "slow":
            time.sleep(self.delay)
        with self.lock:
            self.hits += 1
            if self.mode == "down":
                return 503
            if self.mode == "gone":
                return 404
            if self.mode == "throttled":
                return 429
            key = headers.get("idempotency-key", "")
            self.seen_keys[key] += 1
            first = self.seen_keys[key] == 1
            if self.mode == "flaky" and first and len(self.seen_keys) % 2 == 0:
                return 500  # failed before processing
            self.requests.append(Received(path, headers, body))
            if self.mode == "flaky" and first:
                return 502  # processed, but the answer says it failed: a retry duplicates
            return 202 if path.startswith("/pagerduty") else 200


def start_http_receiver(mode: str = "ok") -> Receiver:
    receiver = Receiver(mode=mode)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            with receiver.lock:
                receiver.peers.add(self.client_address)
            status = receiver.handle(self.path, headers, body)
            payload = b'{"status":"success"}' if status < 300 else b'{"status":"error"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if status == 429:
                self.send_header("Retry-After", "30")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    receiver.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.server.daemon_threads = True
    threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
    return receiver


@dataclass
class MailReceiver:
    messages: list = field(default_factory=list)
    controller: object = None

    @property
    def port(self) -> int:
        return self.controller.port

    def stop(self) -> None:
        self.controller.stop()


def start_smtp_receiver() -> MailReceiver:
    from aiosmtpd.controller import Controller

    mailbox = MailReceiver()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            mailbox.messages.append(message_from_bytes(envelope.content))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    mailbox.controller = controller
    return mailbox
