"""Plumbing the HTTP stand-ins (GitLab, Jenkins, Grafana) share: a quiet handler that routes every method
to one ``_dispatch``, the threaded server's lifecycle, and the foreground serve loop of their CLIs."""

from __future__ import annotations

import re
import signal
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any


class DispatchingHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature fixed by the base class
        return  # tests start many servers; request logs would drown their output

    def _dispatch(self, method: str) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class ThreadedStandin:
    """The lifecycle of a stand-in served from one ThreadingHTTPServer thread. A subclass names its
    handler in ``handler_class()`` (the handler reaches the stand-in as ``self.standin``), its thread in
    ``thread_name``, and sets ``_host``/``_port`` in its ``__init__``."""

    thread_name: str = "standin"
    _host: str = "127.0.0.1"
    _port: int = 0
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def handler_class(self) -> type[DispatchingHandler]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("stand-in not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        handler = type("Handler", (self.handler_class(),), {"standin": self})
        self._httpd = ThreadingHTTPServer((self._host, self._port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=self.thread_name, daemon=True)
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        if self._httpd is None:
            self.start()
        if self._thread is not None:
            self._thread.join()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # The recent requests, for tests that count calls (a subclass sets ``lock`` and ``_requests``, a
    # bounded deque of (method, path)).
    lock: threading.RLock
    _requests: deque

    def log_request(self, method: str, path: str) -> None:
        with self.lock:
            self._requests.append((method, path))

    def request_count(self, pattern: str, method: str | None = None) -> int:
        """How many of the recent requests (faulted ones included) match regex ``pattern`` and ``method``."""
        regex, method = re.compile(pattern), method.upper() if method else None
        with self.lock:
            return sum(1 for m, path in self._requests if method in (None, m) and regex.search(path))


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (from `make run`, systemd or a test) must run the same cleanup as Ctrl-C.
    raise KeyboardInterrupt


def serve_until_interrupted(standin, name: str) -> None:
    """Start ``standin``, announce it, and serve in the foreground until SIGINT or SIGTERM."""
    url = standin.start()
    print(f"{name} stand-in listening on {url} (root {standin.root})", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        standin.serve_forever()
    except KeyboardInterrupt:
        standin.stop()
