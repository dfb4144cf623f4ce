"""The demo services (sandbox/demo_repos) as real processes on 127.0.0.1: health, Prometheus metrics
(requests by code and a latency histogram), one JSON log line per request, and a graceful stop on SIGTERM;
java-hello's start-up delay, heap report and slow-health switch; php-hello's counters shared across its
worker processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from sandbox.procs import port_open, stop
from tests.fixtures.standins import DEMO_REPOS, require
from tests.helpers import eureka
from tests.helpers.demo_processes import Service, build_go_hello, build_java_hello, php_server, start
from tests.polling import until

pytestmark = pytest.mark.standins

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def parse_metrics(text: str) -> dict[tuple[str, str], float]:
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not Prometheus text format: {line!r}"
        samples[(match[1], match[2] or "")] = float(match[3])
    return samples


def check_http_contract(service: Service, health: str, metrics: str) -> None:
    """The three services' shared contract: health UP, metrics by code with a consistent histogram, a JSON
    log line per request with its method, path, status and duration."""
    assert requests.get(service.url + health, timeout=5).json() == {"status": "UP"}
    assert requests.get(service.url + "/", timeout=5).status_code == 200
    assert requests.get(service.url + "/no-such-page", timeout=5).status_code == 404
    scrape = requests.get(service.url + metrics, timeout=5)
    assert scrape.status_code == 200
    assert scrape.headers["Content-Type"].startswith("text/plain")
    samples = parse_metrics(scrape.text)
    # The scrape itself is counted once it has been answered: 2 x 200 and 1 x 404 so far.
    assert samples[("http_requests_total", '{method="GET",code="200"}')] == 2
    assert samples[("http_requests_total", '{method="GET",code="404"}')] == 1
    buckets = [(labels, value) for (name, labels), value in samples.items() if name.endswith("_bucket")]
    assert len(buckets) >= 5 and buckets[-1][0] == '{le="+Inf"}'
    counts = [value for _, value in buckets]
    assert counts == sorted(counts), "histogram buckets must be cumulative"
    assert counts[-1] == samples[("http_request_duration_seconds_count", "")] == 3
    assert samples[("http_request_duration_seconds_sum", "")] > 0

    second = parse_metrics(requests.get(service.url + metrics, timeout=5).text)
    assert second[("http_requests_total", '{method="GET",code="200"}')] == 3  # the first scrape now counts

    until("the request log lines", lambda: len(service.requests_logged()) >= 4)
    logged = service.requests_logged()
    # A threaded server may log a request after the next one it answered: compare without order.
    assert sorted((line["method"], line["path"], line["status"]) for line in logged[:4]) == sorted(
        [("GET", health, 200), ("GET", "/", 200), ("GET", "/no-such-page", 404), ("GET", metrics, 200)]
    )
    assert all(line["duration_ms"] >= 0 and line["remote"] == "127.0.0.1" for line in logged)


# --- go-hello ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def go_hello_binary(tmp_path_factory) -> Path:
    return build_go_hello(tmp_path_factory)


def test_go_hello_serves_health_metrics_and_json_logs_and_stops_on_sigterm(go_hello_binary, tmp_path):
    service = start([str(go_hello_binary)], tmp_path, {}, name="go-hello")
    try:
        check_http_contract(service, "/healthz", "/metrics")
        assert "http_requests_total" in requests.get(service.url + "/actuator/prometheus", timeout=5).text
        listening = service.log_lines()[0]
        assert listening["msg"] == "listening" and listening["addr"] == f"0.0.0.0:{service.port}"
        assert service.terminate() == 0
        # A request still in flight may log its line during the drain, after "shutting down".
        said = [line["msg"] for line in service.log_lines() if line["msg"] != "request"]
        assert said[-2:] == ["shutting down", "stopped"]
    finally:
        stop(service.proc)


def test_go_hello_lets_a_request_in_flight_finish_on_sigterm(go_hello_binary, tmp_path):
    service = start([str(go_hello_binary)], tmp_path, {}, name="go-hello")
    try:
        # A connection opened before SIGTERM whose request arrives after it is still answered.
        with requests.Session() as session:
            assert session.get(service.url + "/healthz", timeout=5).status_code == 200
            service.proc.send_signal(signal.SIGTERM)
            until("the shutdown to begin", lambda: "shutting down" in service.log.read_text())
            assert not port_open(service.port)  # new connections are refused at once
        assert service.proc.wait(timeout=15) == 0
    finally:
        stop(service.proc)


# --- java-hello -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def java_hello_jar(tmp_path_factory) -> Path:
    return build_java_hello(tmp_path_factory)


def java(jar: Path, *flags: str) -> list[str]:
    return ["java", *flags, "-jar", str(jar)]


def test_java_hello_serves_actuator_endpoints_and_json_logs_and_stops_on_sigterm(java_hello_jar, tmp_path):
    service = start(java(java_hello_jar), tmp_path, {"STARTUP_DELAY_SECONDS": "0"}, name="java-hello")
    try:
        check_http_contract(service, "/actuator/health", "/actuator/prometheus")
        assert requests.get(service.url + "/healthz", timeout=5).json() == {"status": "UP"}
        assert requests.get(service.url + "/metrics", timeout=5).status_code == 200
        # The JVM answers SIGTERM with 143 once its shutdown hook has run.
        assert service.terminate() == 128 + signal.SIGTERM
        # A request still in flight may log its line during the drain, after "shutting down".
        said = [line["msg"] for line in service.log_lines() if line["msg"] != "request"]
        assert said[-2:] == ["shutting down", "stopped"]
    finally:
        stop(service.proc)


def test_java_hello_waits_its_startup_delay_and_defaults_to_40_seconds(java_hello_jar, tmp_path):
    delayed = start(
        java(java_hello_jar), tmp_path, {"STARTUP_DELAY_SECONDS": "3"}, name="delayed", wait=False
    )
    default = start(java(java_hello_jar), tmp_path, {"STARTUP_DELAY_SECONDS": ""}, name="default", wait=False)
    try:
        until("java-hello to report its start", lambda: "starting" in delayed.log.read_text())
        started = time.monotonic()
        assert not port_open(delayed.port), "it must not listen before its start-up delay is over"
        until("java-hello to listen", lambda: port_open(delayed.port), timeout=30)
        assert time.monotonic() - started >= 2.0
        assert requests.get(delayed.url + "/actuator/health", timeout=5).json() == {"status": "UP"}

        until("the default java-hello to report its start", lambda: "starting" in default.log.read_text())
        assert default.log_lines()[0]["startup_delay_seconds"] == 40
        time.sleep(1)
        assert not port_open(default.port)
        # SIGTERM during the delay stops it at once (a kubelet killing a pod that never started).
        default.proc.send_signal(signal.SIGTERM)
        assert default.proc.wait(timeout=10) == 128 + signal.SIGTERM
    finally:
        stop(delayed.proc)
        stop(default.proc)


def test_java_hello_prints_its_max_heap_and_processors(java_hello_jar, tmp_path):
    service = start(
        java(java_hello_jar, "-Xmx96m", "-XX:ActiveProcessorCount=1"), tmp_path, {}, name="heap", wait=False
    )
    try:
        until("the start lines", lambda: "processors\n" in service.log.read_text())
        first = service.log_lines()[0]
        assert first["msg"] == "starting"
        # Runtime.maxMemory() is -Xmx less a survivor space: close to, never above, 96 MiB.
        assert 80 <= first["max_heap_mib"] <= 96, first
        assert first["max_heap_bytes"] // (1024 * 1024) == first["max_heap_mib"]
        assert first["available_processors"] == 1
        assert f"max heap {first['max_heap_mib']} MiB, 1 processors" in service.log.read_text()
    finally:
        stop(service.proc)


def test_java_hello_slow_health_switch(java_hello_jar, tmp_path):
    service = start(
        java(java_hello_jar), tmp_path, {"STARTUP_DELAY_SECONDS": "0", "SLOW_HEALTH": "true"}, name="slow"
    )
    try:
        for path in ("/actuator/health", "/healthz"):
            began = time.monotonic()
            assert requests.get(service.url + path, timeout=5).json() == {"status": "UP"}
            assert time.monotonic() - began >= 1.5
            # A 1 s probe timeout fails against it.
            with pytest.raises(requests.exceptions.ReadTimeout):
                requests.get(service.url + path, timeout=(1, 1))
        assert requests.get(service.url + "/admin/slow-health", timeout=5).json() == {"slow_health": True}
        off = requests.post(service.url + "/admin/slow-health?enabled=false", timeout=5)
        assert off.json() == {"slow_health": False}
        began = time.monotonic()
        assert requests.get(service.url + "/actuator/health", timeout=1).status_code == 200
        assert time.monotonic() - began < 1.0
        assert requests.post(service.url + "/admin/slow-health?enabled=true", timeout=5).json() == {
            "slow_health": True
        }
        assert requests.post(service.url + "/admin/slow-health?enabled=maybe", timeout=5).status_code == 400
    finally:
        stop(service.proc)


# --- php-hello --------------------------------------------------------------------------------------------


def test_php_hello_serves_health_metrics_and_json_logs_and_stops_on_sigterm(tmp_path):
    argv, env = php_server(tmp_path)
    service = start(argv, tmp_path, env, name="php-hello")
    try:
        check_http_contract(service, "/healthz", "/metrics")
        assert service.terminate() in (0, -signal.SIGTERM)
        assert not port_open(service.port)
    finally:
        stop(service.proc)


def test_php_hello_counts_every_request_across_worker_processes(tmp_path):
    require(hasattr(os, "fork"), "fork")
    argv, env = php_server(tmp_path, workers=4)
    service = start(argv, tmp_path, env, name="php-workers")
    try:
        total = 60
        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(
                pool.map(
                    lambda _: requests.get(service.url + "/healthz", timeout=10).status_code, range(total)
                )
            )
        assert codes == [200] * total
        samples = parse_metrics(requests.get(service.url + "/metrics", timeout=5).text)
        # Four processes update one file under flock: no increment is lost.
        assert samples[("http_requests_total", '{method="GET",code="200"}')] == total
        assert samples[("http_request_duration_seconds_count", "")] == total
        until("every request's log line", lambda: len(service.requests_logged()) >= total + 1)
    finally:
        stop(service.proc)


# --- fault injection (post-release verification releases a "bad" version with it) -------------------------


def check_fault_injection(service: Service, metrics: str) -> None:
    """ERROR_RATIO=0.3 and EXTRA_LATENCY_MS=30: exactly 3 in every 10 requests to / answer 500, each one
    slowed down, and the counters say so; other paths are untouched."""
    codes = [requests.get(service.url + "/", timeout=10).status_code for _ in range(20)]
    assert codes.count(500) == 6 and codes.count(200) == 14
    assert requests.get(service.url + "/healthz", timeout=5).status_code == 200
    samples = parse_metrics(requests.get(service.url + metrics, timeout=5).text)
    assert samples[("http_requests_total", '{method="GET",code="500"}')] == 6
    assert samples[("http_requests_total", '{method="GET",code="200"}')] == 15
    # Every request to / waited the extra 30 ms, so none of them is in the 25 ms bucket.
    assert samples[("http_request_duration_seconds_bucket", '{le="0.025"}')] <= 1


FAULTS = {"ERROR_RATIO": "0.3", "EXTRA_LATENCY_MS": "30"}


def test_go_hello_injects_errors_and_latency(go_hello_binary, tmp_path):
    service = start([str(go_hello_binary)], tmp_path, FAULTS, name="go-hello")
    try:
        check_fault_injection(service, "/metrics")
    finally:
        stop(service.proc)


def test_php_hello_injects_errors_and_latency(tmp_path):
    argv, env = php_server(tmp_path)
    service = start(argv, tmp_path, {**env, **FAULTS}, name="php-hello")
    try:
        check_fault_injection(service, "/metrics")
    finally:
        stop(service.proc)


def test_java_hello_service_registry_endpoint_without_eureka_keeps_a_local_status(java_hello_jar, tmp_path):
    service = start(java(java_hello_jar), tmp_path, {"STARTUP_DELAY_SECONDS": "0"}, name="registry")
    registry = service.url + "/actuator/serviceregistry"
    try:
        assert requests.get(registry, timeout=5).json() == {"status": "UP", "overriddenStatus": "UNKNOWN"}
        # Spring Cloud's endpoint id since 2020; the hyphenated path is the 404 the old preStop hid.
        assert requests.get(service.url + "/actuator/service-registry", timeout=5).status_code == 404
        out = requests.post(registry, json={"status": "OUT_OF_SERVICE"}, timeout=5)
        assert (out.status_code, out.json()) == (
            200,
            {"status": "OUT_OF_SERVICE", "overriddenStatus": "OUT_OF_SERVICE"},
        )
        assert requests.get(registry, timeout=5).json()["status"] == "OUT_OF_SERVICE"
        # Only the registration changed: the application keeps serving.
        assert requests.get(service.url + "/", timeout=5).status_code == 200
        back = requests.post(registry, json={"status": "UP"}, timeout=5)
        assert back.json() == {"status": "UP", "overriddenStatus": "UNKNOWN"}
        bad = requests.post(registry, json={"status": "DOWN"}, timeout=5)
        assert (bad.status_code, bad.json()) == (400, {"error": "status must be OUT_OF_SERVICE or UP"})
        assert requests.post(registry, data="not json", timeout=5).status_code == 400
        assert requests.put(registry, json={"status": "UP"}, timeout=5).status_code == 405
        overrides = [line for line in service.log_lines() if line["msg"] == "status override"]
        assert [(line["status"], line["eureka"]) for line in overrides] == [
            ("OUT_OF_SERVICE", False),
            ("UP", False),
        ]
        assert service.terminate() == 128 + signal.SIGTERM
        # A request still in flight may log its line during the drain, after "shutting down".
        said = [line["msg"] for line in service.log_lines() if line["msg"] != "request"]
        assert said[-2:] == ["shutting down", "stopped"]
        assert service.log_lines()[-2]["signal"] == "SIGTERM"
    finally:
        stop(service.proc)


def test_java_hello_is_a_eureka_client_of_the_real_server(
    java_hello_jar, tmp_path, eureka_server, unique_app
):
    env = {
        "STARTUP_DELAY_SECONDS": "0",
        "EUREKA_URL": eureka_server.eureka_url,
        "EUREKA_APP": unique_app,
        "EUREKA_RENEWAL_SECONDS": "1",
        "POD_IP": "127.0.0.1",
    }
    service = start(java(java_hello_jar), tmp_path, env, name="eureka-client")
    instance_id = f"127.0.0.1:{unique_app.lower()}:{service.port}"
    registry = service.url + "/actuator/serviceregistry"

    def on_server() -> dict | None:
        return eureka.instance(eureka_server.eureka_url, unique_app, instance_id)

    def statuses() -> tuple[str, str] | None:
        found = on_server()
        return (found["status"], found["overriddenStatus"]) if found else None

    try:
        registered = until("java-hello to register", on_server)
        assert (registered["app"], registered["ipAddr"], registered["port"]["$"]) == (
            unique_app,
            "127.0.0.1",
            service.port,
        )
        assert registered["leaseInfo"]["renewalIntervalInSecs"] == 1
        assert requests.get(registry, timeout=5).json() == {"status": "UP", "overriddenStatus": "UNKNOWN"}

        out = requests.post(registry, json={"status": "OUT_OF_SERVICE"}, timeout=10)
        assert out.status_code == 200, out.text
        assert statuses() == ("OUT_OF_SERVICE", "OUT_OF_SERVICE")
        assert requests.get(registry, timeout=5).json() == {
            "status": "OUT_OF_SERVICE",
            "overriddenStatus": "OUT_OF_SERVICE",
        }
        # The override survives the client's renewals...
        renewed = len(service.log_lines())
        time.sleep(3)
        assert statuses() == ("OUT_OF_SERVICE", "OUT_OF_SERVICE")
        # ...while a DELETE on the server is undone by the next renewal (404 -> registers again), which
        # brings its override back with it.
        gone = requests.delete(f"{eureka_server.eureka_url}apps/{unique_app}/{instance_id}", timeout=10)
        assert gone.status_code == 200
        until("java-hello to register again", lambda: "eureka re-registering" in service.log.read_text())
        assert until("the instance to be back", statuses) == ("OUT_OF_SERVICE", "OUT_OF_SERVICE")
        assert all(line["msg"] != "eureka renewal failed" for line in service.log_lines()[renewed:])

        back = requests.post(registry, json={"status": "UP"}, timeout=10)
        assert back.status_code == 200, back.text
        assert statuses() == ("UP", "UNKNOWN")

        assert service.terminate(timeout=20) == 128 + signal.SIGTERM
        assert on_server() is None
        tail = service.log_lines()
        messages = [line["msg"] for line in tail]
        shutdown = messages.index("shutting down")
        assert messages[shutdown:] == [
            "shutting down",
            "eureka unregistering",
            "eureka deregistered",
            "stopped",
        ]
        assert tail[shutdown + 2]["http_status"] == 200
        overrides = [line for line in tail if line["msg"] == "eureka status override"]
        assert [(line["status"], line["http_status"]) for line in overrides] == [
            ("OUT_OF_SERVICE", 200),
            ("UP", 200),
        ]
    finally:
        stop(service.proc)


def test_java_hello_says_when_eureka_is_unreachable(java_hello_jar, tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        env = {
            "STARTUP_DELAY_SECONDS": "0",
            "EUREKA_URL": f"http://127.0.0.1:{closed.getsockname()[1]}/eureka/",
            "EUREKA_RENEWAL_SECONDS": "1",
        }
        service = start(java(java_hello_jar), tmp_path, env, name="no-eureka")
        try:
            until("the failure in the log", lambda: "eureka unreachable" in service.log.read_text())
            registry = service.url + "/actuator/serviceregistry"
            # The preStop hook must fail visibly when the override cannot be set.
            out = requests.post(registry, json={"status": "OUT_OF_SERVICE"}, timeout=10)
            assert out.status_code == 503 and "Connection refused" in out.json()["error"]
            assert requests.get(registry, timeout=10).status_code == 503
            assert requests.get(service.url + "/", timeout=5).status_code == 200
        finally:
            stop(service.proc)


def test_java_hello_injects_errors_and_latency(java_hello_jar, tmp_path):
    env = {"STARTUP_DELAY_SECONDS": "0", **FAULTS}
    service = start(java(java_hello_jar), tmp_path, env, name="java-hello")
    try:
        check_fault_injection(service, "/actuator/prometheus")
    finally:
        stop(service.proc)


@pytest.mark.parametrize(
    ("repo", "source", "line"),
    [
        ("go-hello", "main.go", 'defaultErrorRatio     = "0"'),
        ("php-hello", "index.php", "const DEFAULT_ERROR_RATIO = '0';"),
        ("java-hello", "src/main/java/hello/App.java", 'static final String DEFAULT_ERROR_RATIO = "0";'),
    ],
)
def test_the_error_ratio_default_is_a_line_a_commit_can_change(repo, source, line):
    # A release changes the image, not the environment: a test makes a bad release by committing this line
    # with another value (tests/deploys/test_verification*.py relies on it being there verbatim).
    assert (DEMO_REPOS / repo / source).read_text().count(line) == 1
