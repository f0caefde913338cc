"""A real HTTP webhook receiver on a free loopback port, in a thread: it verifies each body's HMAC signature
the way a receiving service would, and keeps what it accepted."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Receiver:
    port: int
    secret: str
    status: int = 204  # what it answers to a well-signed POST
    accepted: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    posts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/factory"


@contextmanager
def receiver(secret: str, port: int | None = None, status: int = 204) -> Iterator[Receiver]:
    state = Receiver(port or free_port(), secret, status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            state.posts += 1
            data = self.rfile.read(int(self.headers["Content-Length"]))
            expected = "sha256=" + hmac.new(state.secret.encode(), data, hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, self.headers.get("X-Factory-Signature", "")):
                state.rejected += 1
                self.send_response(401)
            elif state.status >= 300:
                self.send_response(state.status)
            else:
                state.accepted.append(json.loads(data))
                self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", state.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
