"""The worker health check proves that tasks run: a probe goes through the real broker to a real worker
and back through the database. A worker that still answers `celery inspect ping` but runs nothing (here:
stopped with SIGSTOP, as a wedged pool is) fails it within the deadline."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings

from sandbox.procs import stop
from tests.fixtures.ci import unavailable
from tests.fixtures.services import BASE_DIR, server_env, start_celery_worker

pytestmark = pytest.mark.django_db(transaction=True)


def _health(queue: str, timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "manage.py", "worker_health", "--timeout", str(timeout), "--queue", queue],
        cwd=BASE_DIR,
        env={**server_env(), "TEST_CELERY_QUEUE": queue},
        capture_output=True,
        text=True,
        timeout=timeout + 60,
    )
    return result, time.monotonic() - started


def test_health_check_passes_for_a_working_worker_and_fails_for_a_wedged_one(tmp_path):
    if not settings.REDIS_URL:
        unavailable("needs REDIS_URL (run through sandbox.testenv)")
    queue = f"{settings.CELERY_TASK_DEFAULT_QUEUE}-health-{os.getpid()}"
    # The pool docker-compose.yml runs (see docs/architecture.md).
    worker = start_celery_worker(tmp_path / "worker.log", queue=queue, pool=("threads", "--concurrency", "2"))
    try:
        healthy, _elapsed = _health(queue, timeout=30)
        assert healthy.returncode == 0, healthy.stderr
        assert "ran the probe" in healthy.stdout

        os.killpg(worker.pid, signal.SIGSTOP)  # alive, connected, running nothing
        try:
            wedged, elapsed = _health(queue, timeout=5)
        finally:
            os.killpg(worker.pid, signal.SIGCONT)
        assert wedged.returncode != 0
        assert "No worker ran the probe within 5 s" in wedged.stderr
        assert elapsed < 5 + 15  # the deadline, plus the command's own start-up

        # Once it runs again, it passes again; the expired probe of the wedged check is not answered.
        recovered, _elapsed = _health(queue, timeout=30)
        assert recovered.returncode == 0, recovered.stderr
    finally:
        stop(worker)
