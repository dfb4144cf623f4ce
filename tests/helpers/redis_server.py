"""A real redis-server on a free loopback port, standing in for the log proxy in the demo services' log push
tests: it accepts the same commands the services send (AUTH, SELECT, RPUSH), and LRANGE shows what arrived.
It keeps nothing on disk, so a restart on the same port starts empty."""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis

from sandbox.procs import free_port, port_open, redis_server_args, spawn, stop, wait_for
from tests.fixtures.standins import require_tools


@dataclass
class RedisServer:
    workdir: Path
    password: str | None = None
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def start(self) -> RedisServer:
        require_tools("redis-server")
        args = redis_server_args(self.port)
        if self.password:
            args += ["--requirepass", self.password]
        log = self.workdir / f"redis-{self.port}.log"
        self.proc = spawn(args, log=log, cwd=self.workdir)
        wait_for(lambda: port_open(self.port), timeout=15, what="redis-server", proc=self.proc, log=log)
        return self

    def stop(self) -> None:
        """Stopped by its pid; a new start() listens on the same port again."""
        if self.proc is not None:
            stop(self.proc)
            self.proc = None

    def url(self, db: int = 0) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def raw_list(self, key: str, db: int = 0) -> list[str]:
        with redis.Redis(port=self.port, password=self.password, db=db, decode_responses=True) as client:
            return client.lrange(key, 0, -1)

    def lines(self, key: str, db: int = 0) -> list[dict]:
        """The list's values, each of which must be one JSON object."""
        return [json.loads(value) for value in self.raw_list(key, db)]


def silent_server() -> socket.socket:
    """A listening socket that never accepts: connections complete in the kernel's backlog, and whatever is
    sent to them is never answered (a log server that hangs)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", free_port()))
    sock.listen(64)
    return sock
