"""A minimal HTTP/1.1 keep-alive responder on loopback: the fastest possible "Facebook".

It reads each request's headers and skips `Content-Length` body bytes without parsing them, then
answers one fixed success body, so a benchmark measures the client and not the server. It counts
accepted connections and requests, which is what the wire-efficiency check needs. With a `delay` it
answers each request that many seconds after reading it, like a Facebook that takes its time.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Self

_HEADER_END = b"\r\n\r\n"
_SCRATCH = 1 << 20


def success_body(count: int | None = None) -> bytes:
    """Meta's success shapes: `num_processed_entries` (Offline Conversions), `events_received` (CAPI)."""
    if count is None:
        return b'{"id":"bench","fbtrace_id":"BenchTrace"}'
    return b'{"id":"bench","num_processed_entries":%d,"events_received":%d,"fbtrace_id":"BenchTrace"}' % (
        count,
        count,
    )


class Responder:
    """`with Responder() as server:` serves on `server.url`; set `server.answer` between runs.

    Without an answer it counts each request's events (its `"event_name":` keys) and answers that count,
    as Facebook does: slower, for the benchmarks that do not time the server's side."""

    def __init__(self, answer: bytes | None = None, delay: float = 0.0) -> None:
        self.delay = delay
        self.connections = 0
        self.requests = 0
        self.bytes_received = 0
        self._lock = threading.Lock()
        self._counting = answer is None
        self.answer = answer or success_body(0)

    @property
    def answer(self) -> bytes:
        return self._body

    @answer.setter
    def answer(self, body: bytes) -> None:
        self._body = body
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
        )
        self._response = head.encode() + body

    def __enter__(self) -> Self:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._running = True
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running = False
        self._listener.close()

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def _accept(self) -> None:
        while self._running:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        scratch = bytearray(_SCRATCH)
        view = memoryview(scratch)
        pending = b""
        try:
            while True:
                while (end := pending.find(_HEADER_END)) < 0:
                    chunk = connection.recv(65536)
                    if not chunk:
                        return
                    pending += chunk
                length = _content_length(pending[:end])
                body_start = end + len(_HEADER_END)
                buffered = len(pending) - body_start
                if self._counting:
                    body = bytearray(pending[body_start : body_start + length])
                    while len(body) < length:
                        chunk = connection.recv(min(length - len(body), _SCRATCH))
                        if not chunk:
                            return
                        body += chunk
                    pending = pending[body_start + length :]
                    self.answer = success_body(body.count(b'"event_name":'))
                elif buffered >= length:
                    pending = pending[body_start + length :]
                else:
                    remaining = length - buffered
                    pending = b""
                    while remaining:
                        received = connection.recv_into(view, min(remaining, _SCRATCH))
                        if not received:
                            return
                        remaining -= received
                with self._lock:
                    self.requests += 1
                    self.bytes_received += length
                if self.delay:
                    time.sleep(self.delay)
                connection.sendall(self._response)
        except OSError:
            return
        finally:
            connection.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0
