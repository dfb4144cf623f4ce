"""A real HTTP endpoint on 127.0.0.1 that records what it is sent and answers with a chosen status (after
an optional delay): what the preStop hook's HTTP clients are tested against."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


@dataclass
class Endpoint:
    port: int
    status: int = 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def http_endpoint(*, status: int = 200, delay: float = 0.0) -> Iterator[Endpoint]:
    endpoint = Endpoint(port=0, status=status, delay=delay)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the base class's signature
            return

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                endpoint.received.append(
                    Received("POST", self.path, dict(self.headers.items()), body, time.monotonic())
                )
            time.sleep(endpoint.delay)
            answer = b'{"status":"OUT_OF_SERVICE"}' if endpoint.status < 300 else b'{"error":"Not Found"}'
            self.send_response(endpoint.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    endpoint.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="http-endpoint", daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()
