"""Outbound HTTP for the delivery engine: POSTs over kept-alive connections of the standard
library's `http.client`.

Why not a client library for every request: the engine makes one request per delivery, and the
client's own CPU is most of the worker's time per delivery. A sequential POST of a 1 kB webhook
body to a local receiver costs about 0.56 ms of client CPU through `httpx.Client`, 0.33 ms
through urllib3 (`PoolManager` or a bare `HTTPConnectionPool`) and 0.17 ms through
`http.client` on two vCPUs; with urllib3 the fan-out benchmark's p95 from raise to receipt was
2.4 s against a 2 s target, with this pool 1.2-1.5 s (bench/alert_fanout.py,
docs/performance.md). What is written here is only the pooling; requests, responses and TLS are
the standard library's.
What httpx brought is kept: the same TLS settings (`httpx.create_ssl_context()`: certificate
and host name verification against certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR), one
timeout per connect, write and read (ALERT_DELIVERY_TIMEOUT_SECONDS), no redirects, no automatic
retries (the engine retries, with backoff). A process with an HTTP proxy configured in its
environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, as httpx reads them) sends through
`httpx.Client` instead, which honours it.

Connections are pooled per scheme, host and port; a connection is used by one request at a time
(the engine sends to one channel per thread), reused after a complete response unless the
server asked to close, and dropped when it has been idle for KEEPALIVE_SECONDS or the server has
closed it meanwhile (the socket reads as ready before a request is written).
"""

from __future__ import annotations

import functools
import http.client
import select
import threading
import time
import urllib.request
from dataclasses import dataclass

import httpx

KEEPALIVE_SECONDS = 5.0  # httpx's default keep-alive expiry
IDLE_PER_HOST = 8
MAX_RESPONSE_BYTES = 64 * 1024  # what is read of an answer; a longer one closes the connection

ERRORS = (OSError, http.client.HTTPException)  # what a failed request raises: retried


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]  # lower-case names
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class Pool:
    """Kept-alive `http.client` connections, shared by the sending threads of a process."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        self._idle: dict[tuple[str, str, int], list[tuple[float, http.client.HTTPConnection]]] = {}
        self._lock = threading.Lock()
        self._ssl_context = None

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        key, target = _parse(url)
        connection = self._checkout(key)
        try:
            connection.request("POST", target, body=body, headers=headers)
            answer = connection.getresponse()
            content = answer.read(MAX_RESPONSE_BYTES)
            complete = answer.isclosed() or not answer.read(1)
            response = Response(
                answer.status, {k.lower(): v for k, v in answer.getheaders()}, content
            )
        except BaseException:
            connection.close()
            raise
        if complete and not answer.will_close:
            self._checkin(key, connection)
        else:
            connection.close()
        return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for _, connection in connections:
                connection.close()

    def _checkout(self, key: tuple[str, str, int]) -> http.client.HTTPConnection:
        now = time.monotonic()
        while True:
            with self._lock:
                connections = self._idle.get(key)
                if not connections:
                    break
                since, connection = connections.pop()
            if now - since < KEEPALIVE_SECONDS and _still_open(connection):
                return connection
            connection.close()
        scheme, host, port = key
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=self.timeout, context=self._tls()
            )
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _checkin(self, key: tuple[str, str, int], connection: http.client.HTTPConnection) -> None:
        with self._lock:
            connections = self._idle.setdefault(key, [])
            if len(connections) < IDLE_PER_HOST:
                connections.append((time.monotonic(), connection))
                return
        connection.close()

    def _tls(self):
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()
        return self._ssl_context


@functools.lru_cache(maxsize=1024)
def _parse(url: str) -> tuple[tuple[str, str, int], str]:
    """(scheme, host, port) and the request target, as httpx reads the URL: the host
    IDNA-encoded, path and query percent-encoded. Raises what httpx raises for a URL it cannot
    send to."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise httpx.UnsupportedProtocol(f"cannot send to {url!r}: needs http(s) and a host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = parsed.raw_host.decode("ascii")
    return (parsed.scheme, host, port), parsed.raw_path.decode("ascii")


def _still_open(connection: http.client.HTTPConnection) -> bool:
    """An idle kept-alive socket that reads as ready was closed by the server (or sent
    something unasked): it must not carry the next request."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def proxied() -> bool:
    """Whether the environment configures an HTTP proxy (httpx would send through it)."""
    proxies = urllib.request.getproxies()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))
