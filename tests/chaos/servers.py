"""Private PostgreSQL and Redis servers for the outage scenarios, started with sandbox.testenv's own
functions on ports and a state directory of their own. The shared servers (55432, 56379) serve other
people's runs and are never stopped; these are ours to stop and restart."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from sandbox import testenv
from sandbox.procs import port_open, wait_for


@dataclass
class PrivateServers:
    state_dir: Path
    pg_port: int
    redis_port: int

    @classmethod
    def from_env(cls) -> PrivateServers:
        return cls(
            Path(os.environ["CHAOS_STATE_DIR"]),
            int(os.environ["CHAOS_PG_PORT"]),
            int(os.environ["CHAOS_REDIS_PORT"]),
        )

    def env(self) -> dict[str, str]:
        return {
            "CHAOS_STATE_DIR": str(self.state_dir),
            "CHAOS_PG_PORT": str(self.pg_port),
            "CHAOS_REDIS_PORT": str(self.redis_port),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
        }

    @property
    def database_url(self) -> str:
        return f"postgres://opsportal@127.0.0.1:{self.pg_port}/opsportal"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @contextlib.contextmanager
    def _testenv(self):
        """testenv's functions, aimed at our ports and state directory; kept running (detached) so that
        whoever restarts them later finds the same data directory."""
        with mock.patch.multiple(
            testenv,
            PG_PORT=self.pg_port,
            REDIS_PORT=self.redis_port,
            STATE_DIR=self.state_dir,
            KEEP_SERVERS=True,
        ):
            yield

    def start_postgres(self) -> None:
        with self._testenv():
            testenv.start_postgres([], [])

    def start_redis(self) -> None:
        with self._testenv():
            testenv.start_redis([])

    def stop_postgres(self) -> None:
        """A fast shutdown (SIGINT to the postmaster): sessions are cut, as in a restart."""
        pid_file = self.state_dir / "pg" / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
        wait_for(lambda: not port_open(self.pg_port), timeout=60, what="PostgreSQL to stop")

    def stop_redis(self) -> None:
        """SHUTDOWN NOSAVE: the server keeps no data, so every queued message is lost with it."""
        import redis

        if port_open(self.redis_port):
            with contextlib.suppress(redis.ConnectionError):
                redis.Redis(port=self.redis_port).shutdown(nosave=True)
        wait_for(lambda: not port_open(self.redis_port), timeout=30, what="Redis to stop")

    def restart(self, which: str, downtime: float) -> None:
        getattr(self, f"stop_{which}")()
        time.sleep(downtime)
        getattr(self, f"start_{which}")()

    def stop(self) -> None:
        self.stop_redis()
        self.stop_postgres()
