"""`make run`'s launcher, fully embedded (SQLite, file broker, no Redis): it seeds the demo, serves
HTTP and WebSocket, and background tasks still run in a separate worker and reach the browser. It keeps
its worker running, and a quick restart waits for the previous run and registers the live apiserver.

One launcher serves the whole module (the last test replaces it with a second one)."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml
from django.conf import settings

from sandbox.kube.cluster import ClusterState, pid_alive, read_state
from sandbox.procs import free_port, port_open, stop
from tests.helpers.kafka import consume, produce, unique_topic
from tests.livews import LiveClient

pytestmark = pytest.mark.services

CREDENTIALS = re.compile(r"^\s+(admin|ops|dev|qa)\s+(\S+)$", re.M)


class Launch:
    """One `python -m sandbox.run` on a var dir; its output is in ``log``."""

    def __init__(self, var_dir: Path, port: int, log: Path):
        self.var_dir, self.port, self.log = var_dir, port, log
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE"}
        }
        env.update(OPSPORTAL_VAR_DIR=str(var_dir), OPSPORTAL_PORT=str(port), PYTHONUNBUFFERED="1")
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sandbox.run"],
                cwd=settings.BASE_DIR,
                env=env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return self.log.read_text()

    def wait_output(self, pattern: str, timeout: float = 180) -> re.Match:
        deadline = time.monotonic() + timeout
        while not (match := re.search(pattern, self.output, re.M)):
            assert self.proc.poll() is None, self.output
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{self.output}"
            time.sleep(0.2)
        return match

    def stop(self) -> None:
        # Longer than the launcher's own shutdown of its children, so it is never killed halfway.
        stop(self.proc, timeout=60)


@pytest.fixture(scope="module")
def embedded_portal(kube_binaries, tmp_path_factory):
    # With the binaries cached, the launcher's control plane starts in seconds; the test never waits
    # on (or races) a background build.
    root = tmp_path_factory.mktemp("make-run")
    launch = Launch(root / "var", free_port(), root / "run.log")
    launch.wait_output("OpsPortal is up")
    yield launch
    launch.stop()


def _signed_in(launch: Launch, credentials: dict[str, str], username: str) -> requests.Session:
    browser = requests.Session()
    assert browser.get(f"{launch.base}/login/", timeout=10).status_code == 200
    dashboard = browser.post(
        f"{launch.base}/login/",
        data={
            "username": username,
            "password": credentials[username],
            "csrfmiddlewaretoken": browser.cookies["csrftoken"],
        },
        headers={"Referer": f"{launch.base}/login/"},
        timeout=10,
    )
    assert dashboard.status_code == 200
    return browser


def _worker_answers(launch: Launch, browser: requests.Session) -> dict:
    """A task through the broker and the worker, answered on the live stream."""
    me = browser.get(f"{launch.base}/api/me/", timeout=10).json()
    live = LiveClient(launch.base, browser.cookies["sessionid"])
    try:
        replayed = live.subscribe(f"user.{me['id']}")
        queued = browser.post(
            f"{launch.base}/worker-ping/", headers={"X-CSRFToken": browser.cookies["csrftoken"]}, timeout=10
        )
        assert queued.status_code == 204
        pong = live.next_event("worker-pong", timeout=90)
    finally:
        live.close()
    return {"replayed": replayed, "pong": pong}


def _ops_headers(launch: Launch, credentials: dict[str, str]) -> dict[str, str]:
    token = requests.post(
        f"{launch.base}/api/token/", data={"username": "ops", "password": credentials["ops"]}, timeout=10
    )
    return {"Authorization": f"Token {token.json()['token']}"}


def _sandbox_clusters(launch: Launch, headers: dict[str, str], timeout: float = 240) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        answer = requests.get(f"{launch.base}/api/clusters/", headers=headers, timeout=10).json()
        clusters = {c["name"]: c for c in answer.get("results", answer)}
        if {"sandbox-test", "sandbox-prod"} <= set(clusters):
            return clusters
        assert time.monotonic() < deadline, (
            f"the sandbox cluster was not registered; clusters: {set(clusters)}"
        )
        time.sleep(1)


@pytest.fixture(scope="module")
def credentials(embedded_portal) -> dict[str, str]:
    return dict(CREDENTIALS.findall(embedded_portal.output))


def test_embedded_run_serves_login_dashboard_and_live_worker(embedded_portal, credentials):
    assert set(credentials) == {"admin", "ops", "dev", "qa"}
    assert "embedded" in embedded_portal.output
    browser = _signed_in(embedded_portal, credentials, "dev")
    home = browser.get(f"{embedded_portal.base}/", timeout=10).text
    assert "go-hello" in home  # the demo project
    assert "java-hello" in home and "php-hello" in home  # one demo project per language the sandbox builds
    # The base images it built from this machine's packages, in its own registry, for the generic Dockerfiles.
    assert re.search(
        r"^Sandbox: base images .*java 127\.0\.0\.1:\d+/sandbox/base/java:\w+", embedded_portal.output, re.M
    )
    # ...and the preStop helper image every generic Dockerfile copies its HTTP client from.
    assert re.search(
        r"^Sandbox: preStop helper image \(OPSPORTAL_PRESTOP_HELPER_IMAGE\) "
        r"127\.0\.0\.1:\d+/sandbox/base/prestop-helper:\w+$",
        embedded_portal.output,
        re.M,
    )
    answered = _worker_answers(embedded_portal, browser)
    assert answered["replayed"] == []
    assert answered["pong"]["seq"] == 1


def test_embedded_run_starts_the_sandbox_and_registers_the_local_cluster(embedded_portal, credentials):
    assert "Sandbox: GitLab http://127.0.0.1:" in embedded_portal.output
    headers = _ops_headers(embedded_portal, credentials)
    sandbox_test = _sandbox_clusters(embedded_portal, headers)["sandbox-test"]
    check = requests.post(
        f"{embedded_portal.base}/api/clusters/{sandbox_test['id']}/test-connection/",
        headers=headers,
        timeout=30,
    )
    assert check.json()["ok"] is True, check.text


def _prometheus_jobs(url: str) -> list[str]:
    config = yaml.safe_load(requests.get(f"{url}/api/v1/status/config", timeout=10).json()["data"]["yaml"])
    return [job["job_name"] for job in config["scrape_configs"]]


def test_embedded_run_starts_prometheus_with_the_portal_configuration(embedded_portal, credentials):
    url = embedded_portal.wait_output(r"^Sandbox: Prometheus (http://127\.0\.0\.1:\d+)$").group(1)
    assert re.search(r"^Sandbox: Prometheus configuration applied", embedded_portal.output, re.M)
    headers = _ops_headers(embedded_portal, credentials)
    _sandbox_clusters(embedded_portal, headers)
    # Applied again once the clusters are registered: one service-discovery job per cluster.
    deadline = time.monotonic() + 60
    while "opsportal-sd-sandbox-test" not in (jobs := _prometheus_jobs(url)):
        assert time.monotonic() < deadline, f"Prometheus runs only {jobs}"
        time.sleep(0.5)
    assert {"prometheus", "opsportal-sd-sandbox-prod", "opsportal"} <= set(jobs)
    state = requests.get(
        f"{embedded_portal.base}/api/clusters/prometheus-config/", headers=headers, timeout=10
    )
    assert state.json()["status"] == "applied" and state.json()["managed"] is True, state.text
    # Prometheus reads the token from var/, never from its configuration.
    token = (embedded_portal.var_dir / "monitoring_token").read_text()
    assert token not in requests.get(f"{url}/api/v1/status/config", timeout=10).text


def test_embedded_run_starts_alertmanager_whose_webhook_reaches_the_portal(embedded_portal, credentials):
    url = embedded_portal.wait_output(r"^Sandbox: Alertmanager (http://127\.0\.0\.1:\d+)$").group(1)
    # The receiver's token stays in var/: Alertmanager reads it from a file, never from its configuration.
    token = (embedded_portal.var_dir / "alertmanager_webhook_token").read_text()
    status = requests.get(f"{url}/api/v2/status", timeout=10).json()
    assert f"{embedded_portal.base}/api/alerts/alertmanager" in status["config"]["original"]
    assert token not in status["config"]["original"]
    labels = {"alertname": "MakeRunProbe", "project": "go-hello", "env": "test", "severity": "info"}
    assert requests.post(f"{url}/api/v2/alerts", json=[{"labels": labels}], timeout=10).status_code == 200
    headers = _ops_headers(embedded_portal, credentials)
    deadline = time.monotonic() + 60  # the sandbox's group_wait is 10 s
    while True:
        alerts = requests.get(
            f"{embedded_portal.base}/api/projects/go-hello/alerts/", headers=headers, timeout=10
        ).json()["results"]
        if any(a["alertname"] == "MakeRunProbe" and a["status"] == "firing" for a in alerts):
            break
        assert time.monotonic() < deadline, f"no MakeRunProbe alert in the portal: {alerts}"
        time.sleep(1)


def test_embedded_run_sends_a_channels_test_message_to_the_robot_standin(embedded_portal, credentials):
    """A channel made with the printed demo robot reaches the sandbox's stand-in, never DingTalk."""
    match = embedded_portal.wait_output(
        r"^Sandbox: alert stand-ins: robots (http://127\.0\.0\.1:\d+) \(DingTalk (.*?);"
    )
    robots, dingtalk = match.group(1), dict(pair.split(" ", 1) for pair in match.group(2).split(", "))
    headers = _ops_headers(embedded_portal, credentials)
    created = requests.post(
        f"{embedded_portal.base}/api/channels/",
        json={"name": "make-run-dingtalk", "kind": "dingtalk", **dingtalk},
        headers=headers,
        timeout=10,
    )
    assert created.status_code == 201, created.text
    sent = requests.post(
        f"{embedded_portal.base}/api/channels/{created.json()['id']}/test/", headers=headers, timeout=10
    )
    assert sent.status_code == 202, sent.text
    deadline = time.monotonic() + 60
    while True:
        messages = requests.get(f"{robots}/_standin/messages", timeout=10).json()["messages"]
        if any(m["robot"] == dingtalk["access_token"] for m in messages):
            break
        assert time.monotonic() < deadline, f"the test message did not reach the stand-in: {messages}"
        time.sleep(1)


def test_embedded_run_starts_kafka_with_a_listener_for_the_pods(embedded_portal, credentials):
    bootstrap = embedded_portal.wait_output(r"^Sandbox: Kafka (127\.0\.0\.1:\d+) \(log ").group(1)
    _sandbox_clusters(embedded_portal, _ops_headers(embedded_portal, credentials))
    addresses = [bootstrap]
    gateway = read_state(embedded_portal.var_dir / "kube").pod_gateway
    if gateway:  # real pods: the broker was restarted with a listener on their bridge's gateway
        pods = embedded_portal.wait_output(
            rf"^Sandbox: Kafka for pods \(bootstrap servers\): ({re.escape(gateway)}:\d+)$"
        )
        addresses.append(pods.group(1))
    topic = unique_topic()
    for address in addresses:  # the host reaches the gateway too, as the pods do
        produce(address, topic, [(b"make-run", address.encode())])
    assert [m.value() for m in consume(bootstrap, topic, len(addresses))] == [a.encode() for a in addresses]


def test_a_killed_worker_is_restarted_and_runs_tasks(embedded_portal, credentials):
    first = int(embedded_portal.wait_output(r"^The worker started \(pid (\d+)\)\.$").group(1))
    os.killpg(first, signal.SIGKILL)  # the worker and its pool children, as the OOM killer would
    embedded_portal.wait_output(r"^The worker exited with code -9; restarting it in 1 s", timeout=30)
    restarted = embedded_portal.wait_output(rf"^The worker started \(pid (?!{first}\))(\d+)\)\.$", timeout=30)
    assert pid_alive(int(restarted.group(1)))
    browser = _signed_in(embedded_portal, credentials, "dev")
    answered = _worker_answers(embedded_portal, browser)
    assert answered["pong"]["name"] == "worker-pong"
    assert answered["pong"]["seq"] == len(answered["replayed"]) + 1  # a new answer, after the earlier ones
    assert embedded_portal.proc.poll() is None  # the portal never stopped
    assert "giving up" not in embedded_portal.output


def test_a_quick_restart_waits_for_the_previous_run_and_registers_the_live_apiserver(
    embedded_portal, credentials, tmp_path
):
    """Runs last: it stops the module's launcher. The second launcher starts while the first still runs,
    so it must wait; the first is then stopped, and the second must serve the cluster it started, not
    the dying one (whose supervisor outlives its launcher by a few seconds)."""
    headers = _ops_headers(embedded_portal, credentials)
    _sandbox_clusters(embedded_portal, headers)
    kube_dir = embedded_portal.var_dir / "kube"
    before = ClusterState.read(kube_dir)
    registry = re.search(r"registry (http://\S+)", embedded_portal.output).group(1)

    second = Launch(embedded_portal.var_dir, embedded_portal.port, tmp_path / "run-2.log")
    try:
        second.wait_output(rf"Waiting for the previous `make run` \(pid {embedded_portal.proc.pid}\) to stop")
        embedded_portal.proc.send_signal(signal.SIGINT)  # Ctrl-C, then at once the new run goes on
        second.wait_output("OpsPortal is up")
        assert embedded_portal.proc.wait(5) == 0
        first_prometheus = re.search(
            r"^Sandbox: Prometheus http://127\.0\.0\.1:(\d+)$", embedded_portal.output, re.M
        )
        assert not port_open(int(first_prometheus.group(1)))  # stopped with its launcher
        first_alertmanager = re.search(
            r"^Sandbox: Alertmanager http://127\.0\.0\.1:(\d+)$", embedded_portal.output, re.M
        )
        assert not port_open(int(first_alertmanager.group(1)))
        assert f"registry {registry}" in second.output  # builds in flight still find their registry

        deadline = time.monotonic() + 240
        while True:
            state = ClusterState.read(kube_dir)
            if state and state.phase == "ready" and state.pid != before.pid:
                break
            assert time.monotonic() < deadline, f"no new control plane: {state}"
            time.sleep(0.5)
        assert not pid_alive(before.pid)  # the previous run's supervisor is gone
        clusters = _sandbox_clusters(second, headers)
        deadline = time.monotonic() + 60
        while clusters["sandbox-test"]["api_url"] != state.server:
            assert time.monotonic() < deadline, (
                f"registered {clusters['sandbox-test']['api_url']}, not {state.server}"
            )
            time.sleep(0.5)
            clusters = _sandbox_clusters(second, headers)
        assert clusters["sandbox-prod"]["api_url"] == state.server
        check = requests.post(
            f"{second.base}/api/clusters/{clusters['sandbox-test']['id']}/test-connection/",
            headers=headers,
            timeout=30,
        )
        assert check.json()["ok"] is True, check.text
    finally:
        second.stop()
