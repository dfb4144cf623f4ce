"""Chaos: Redis, PostgreSQL and the apiserver restarted in the middle of real releases.

The portal, the worker and the scenarios (tests/chaos/outage_scenarios.py) run in a pytest session of
their own against a private PostgreSQL and Redis on free ports (tests/chaos/servers.py), because the
shared servers on 55432/56379 carry other people's runs and must never be restarted."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings

from sandbox.procs import free_port
from tests.chaos.servers import PrivateServers

pytestmark = [pytest.mark.chaos, pytest.mark.kube, pytest.mark.standins]

SCENARIOS = Path(__file__).with_name("outage_scenarios.py")


def test_releases_survive_redis_postgres_and_apiserver_restarts(tmp_path):
    # Under /var/tmp, not the test's tmp_path: as root, PostgreSQL runs as `postgres` (testenv gives it
    # the directory) and must reach it.
    servers = PrivateServers(
        Path(tempfile.mkdtemp(prefix="opsportal-chaos-", dir="/var/tmp")), free_port(), free_port()
    )
    try:
        servers.start_postgres()
        servers.start_redis()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "REDIS_URL", "TEST_CELERY_QUEUE", "PYTEST_CURRENT_TEST")
        }
        env.update(servers.env())
        started = time.monotonic()
        inner = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                str(SCENARIOS),
                "-q",
                "-s",
                "-p",
                "no:randomly",
                f"--basetemp={tmp_path / 'inner'}",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=420,
        )
        output = inner.stdout[-6000:] + inner.stderr[-3000:]
        print(f"outage scenarios: {time.monotonic() - started:.0f} s")
        print("\n".join(line for line in inner.stdout.splitlines() if line.startswith("outage timings")))
        assert inner.returncode == 0, output
        assert " passed" in inner.stdout and " skipped" not in inner.stdout, output
    finally:
        servers.stop()
        shutil.rmtree(servers.state_dir, ignore_errors=True)
