"""`make run`'s launcher, fully embedded (SQLite, file broker, no Redis): it seeds the demo, serves
HTTP and WebSocket, and background tasks still run in a separate worker and reach the browser."""

import os
import re
import subprocess
import sys
import time

import pytest
import requests
from django.conf import settings

from sandbox.procs import free_port, stop
from tests.livews import LiveClient

pytestmark = pytest.mark.services


@pytest.fixture
def embedded_portal(kube_binaries, tmp_path):
    # With the binaries cached, the launcher's control plane starts in seconds; the test never waits
    # on (or races) a background build.
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    }
    env.update(OPSPORTAL_VAR_DIR=str(tmp_path / "var"), OPSPORTAL_PORT=str(port), PYTHONUNBUFFERED="1")
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.run"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    deadline = time.monotonic() + 180
    while "OpsPortal is up" not in log.read_text():
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    yield f"http://127.0.0.1:{port}", log.read_text()
    # Longer than the launcher's own shutdown of its children, so it is never killed halfway.
    stop(proc, timeout=60)


def test_embedded_run_serves_login_dashboard_and_live_worker(embedded_portal):
    base, output = embedded_portal
    passwords = dict(re.findall(r"^\s+(admin|ops|dev|qa)\s+(\S+)$", output, re.M))
    assert set(passwords) == {"admin", "ops", "dev", "qa"}
    assert "embedded" in output

    browser = requests.Session()
    login_page = browser.get(f"{base}/login/", timeout=10)
    assert login_page.status_code == 200
    csrf = browser.cookies["csrftoken"]
    dashboard = browser.post(
        f"{base}/login/",
        data={"username": "dev", "password": passwords["dev"], "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{base}/login/"},
        timeout=10,
    )
    assert dashboard.status_code == 200
    assert "go-hello" in dashboard.text  # the demo project

    me = browser.get(f"{base}/api/me/", timeout=10).json()
    live = LiveClient(base, browser.cookies["sessionid"])
    assert live.subscribe(f"user.{me['id']}") == []
    queued = browser.post(
        f"{base}/worker-ping/", headers={"X-CSRFToken": browser.cookies["csrftoken"]}, timeout=10
    )
    assert queued.status_code == 204
    pong = live.next_event("worker-pong", timeout=60)
    assert pong["seq"] == 1
    live.close()


def test_embedded_run_starts_the_sandbox_and_registers_the_local_cluster(embedded_portal):
    base, output = embedded_portal
    assert "Sandbox: GitLab http://127.0.0.1:" in output
    passwords = dict(re.findall(r"^\s+(admin|ops|dev|qa)\s+(\S+)$", output, re.M))
    token = requests.post(
        f"{base}/api/token/", data={"username": "ops", "password": passwords["ops"]}, timeout=10
    )
    headers = {"Authorization": f"Token {token.json()['token']}"}
    deadline = time.monotonic() + 240
    names: set[str] = set()
    while not {"sandbox-test", "sandbox-prod"} <= names:
        assert time.monotonic() < deadline, f"the sandbox cluster was not registered; clusters: {names}"
        clusters = requests.get(f"{base}/api/clusters/", headers=headers, timeout=10).json()
        names = {c["name"] for c in clusters.get("results", clusters)}
        time.sleep(1)
    sandbox_test = next(c for c in clusters.get("results", clusters) if c["name"] == "sandbox-test")
    check = requests.post(
        f"{base}/api/clusters/{sandbox_test['id']}/test-connection/", headers=headers, timeout=30
    )
    assert check.json()["ok"] is True, check.text
