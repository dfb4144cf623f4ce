"""A small synchronous WebSocket client for the live-events endpoint, as a browser would use it."""

import json
import time
from urllib.parse import urlparse

from websockets.sync.client import connect


class LiveClient:
    def __init__(self, base_url: str, session_cookie: str | None, origin: str | None = None):
        parsed = urlparse(base_url)
        headers = {"Origin": origin or base_url}
        if session_cookie:
            headers["Cookie"] = f"sessionid={session_cookie}"
        self.ws = connect(f"ws://{parsed.netloc}/ws/events/", additional_headers=headers, open_timeout=10)

    def send(self, message: dict) -> None:
        self.ws.send(json.dumps(message))

    def recv(self, timeout: float = 20) -> dict:
        return json.loads(self.ws.recv(timeout=timeout))

    def subscribe(self, stream: str, last_seq: int = 0) -> list[dict]:
        """Subscribe; return the replayed events that came before the confirmation."""
        self.send({"type": "subscribe", "stream": stream, "last_seq": last_seq})
        replayed = []
        while True:
            message = self.recv()
            if message["type"] == "subscribed":
                return replayed
            if message["type"] == "error":
                raise LookupError(message["error"])
            replayed.append(message)

    def next_event(self, name: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(timeout=max(0.1, deadline - time.monotonic()))
            if message["type"] == "event" and message["name"] == name:
                return message

    def close(self) -> None:
        self.ws.close()
