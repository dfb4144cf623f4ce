"""Plumbing the HTTP stand-ins (GitLab, Jenkins) share: a quiet handler that routes every method to one
``_dispatch``, and the foreground serve loop of their CLIs."""

from __future__ import annotations

import signal
from http.server import BaseHTTPRequestHandler
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
