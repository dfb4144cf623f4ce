"""The demo services push their JSON log lines with RPUSH to LOG_REDIS_URL (the log proxy in the company's
setup), as real processes against a real redis-server, which accepts the same commands as the proxy: every
line arrives as valid JSON under the configured key and database, through AUTH; a log server that is down
or hangs slows no request and shows in the services' counters; go-hello and java-hello flush their queue on
SIGTERM."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import requests

from sandbox.procs import stop
from tests.helpers.demo_processes import Service, build_go_hello, build_java_hello, php_server, start
from tests.helpers.metrics import sample
from tests.helpers.redis_server import RedisServer, silent_server
from tests.polling import until

pytestmark = pytest.mark.standins

PASSWORD = "log-s3cret"
REQUEST_FIELDS = {"level", "logger", "msg", "method", "path", "status", "duration_ms", "remote"}


@dataclass
class Demo:
    name: str
    argv: list[str]
    env: dict[str, str]
    health: str
    metrics: str
    exit_on_sigterm: tuple[int, ...]

    def run(self, tmp_path: Path, **env: str) -> Service:
        return start(self.argv, tmp_path, {**self.env, **env}, name=self.name)


@pytest.fixture(scope="module")
def go_hello_binary(tmp_path_factory) -> Path:
    return build_go_hello(tmp_path_factory)


@pytest.fixture(scope="module")
def java_hello_jar(tmp_path_factory) -> Path:
    return build_java_hello(tmp_path_factory)


def demo_named(name: str, request, tmp_path: Path) -> Demo:
    if name == "go-hello":
        binary = request.getfixturevalue("go_hello_binary")
        return Demo(name, [str(binary)], {}, "/healthz", "/metrics", (0,))
    if name == "java-hello":
        jar = request.getfixturevalue("java_hello_jar")
        # The JVM answers SIGTERM with 143 once its shutdown hook has run.
        return Demo(
            name,
            ["java", "-jar", str(jar)],
            {"STARTUP_DELAY_SECONDS": "0"},
            "/actuator/health",
            "/actuator/prometheus",
            (128 + signal.SIGTERM,),
        )
    argv, env = php_server(tmp_path)
    return Demo(name, argv, env, "/healthz", "/metrics", (0, -signal.SIGTERM))


@pytest.fixture(params=["go-hello", "java-hello", "php-hello"])
def demo(request, tmp_path) -> Demo:
    return demo_named(request.param, request, tmp_path)


@pytest.fixture(params=["go-hello", "java-hello"])
def queued_demo(request, tmp_path) -> Demo:
    """The services with a process that outlives a request: a queue and a background sender."""
    return demo_named(request.param, request, tmp_path)


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def counters(service: Service, demo: Demo) -> dict[str, float]:
    text = requests.get(service.url + demo.metrics, timeout=5).text
    names = ("log_lines_pushed_total", "log_lines_dropped_total", "log_push_errors_total")
    return {name: sample(text, name) for name in names}


def counted(service: Service, demo: Demo, name: str, minimum: float) -> dict[str, float]:
    """The counters, once ``name`` has reached ``minimum`` (the background sender counts after the fact)."""

    def reached() -> dict[str, float] | None:
        seen = counters(service, demo)
        return seen if seen[name] >= minimum else None

    return until(f"{name} >= {minimum}", reached)


def timed_get(url: str) -> float:
    began = time.monotonic()
    assert requests.get(url, timeout=5).status_code == 200
    return time.monotonic() - began


def test_every_json_line_is_pushed_through_auth_to_the_key_and_database(demo, tmp_path):
    server = RedisServer(tmp_path, password=PASSWORD).start()
    key = "logs:shop:staging"  # what the portal sets: logs:<project>:<environment>
    service = demo.run(tmp_path, LOG_REDIS_URL=server.url(db=5), LOG_REDIS_KEY=key)
    try:
        assert requests.get(service.url + demo.health, timeout=5).status_code == 200
        assert requests.get(service.url + "/", timeout=5).status_code == 200
        assert requests.get(service.url + "/no-such-page", timeout=5).status_code == 404

        def requests_pushed() -> list[dict]:
            return [line for line in server.lines(key, db=5) if line["msg"] == "request"]

        pushed = until(
            "three request lines in the list", lambda: len(requests_pushed()) >= 3 and requests_pushed()
        )
        assert sorted((line["method"], line["path"], line["status"]) for line in pushed) == sorted(
            [("GET", demo.health, 200), ("GET", "/", 200), ("GET", "/no-such-page", 404)]
        )
        for line in pushed:
            assert REQUEST_FIELDS <= line.keys() and ({"ts", "time"} & line.keys()), line
            assert (line["level"], line["logger"], line["remote"]) == ("INFO", demo.name, "127.0.0.1")
            assert line["duration_ms"] >= 0
        # SELECT 5 took effect, and the default key was not used.
        assert server.raw_list(key, db=0) == [] and server.raw_list(f"logs:{demo.name}", db=5) == []

        seen = counted(service, demo, "log_lines_pushed_total", 3)
        assert seen["log_lines_dropped_total"] == seen["log_push_errors_total"] == 0

        if demo.name == "php-hello":
            # Each request pushes its own line once it has answered (the built-in server writes none itself).
            until("every line in the list", lambda: server.lines(key, db=5) == service.log_lines())
        else:
            assert service.terminate(timeout=15) in demo.exit_on_sigterm
            # Start and stop lines too: "stopped" is written after SIGTERM, so its arrival shows the flush.
            stdout = service.log_lines()
            assert stdout[-1]["msg"] == "stopped"
            assert server.lines(key, db=5) == stdout
    finally:
        stop(service.proc)
        server.stop()


def test_queued_lines_survive_an_outage_newest_first_and_requests_stay_fast(
    queued_demo, redis_server, tmp_path
):
    demo = queued_demo
    service = demo.run(tmp_path, LOG_REDIS_URL=redis_server.url(), LOG_QUEUE_LINES="5")
    key = f"logs:{demo.name}"  # the default key
    try:
        requests.get(service.url + "/", timeout=5)
        until(
            "the first request line",
            lambda: any(line["msg"] == "request" for line in redis_server.lines(key)),
        )
        redis_server.stop()

        slowest = max(timed_get(service.url + "/") for _ in range(20))
        assert slowest < 0.5, f"a request took {slowest:.2f}s with the log server down"
        seen = counted(service, demo, "log_push_errors_total", 1)
        # 20 lines and a scrape's into a queue of 5: the oldest were dropped.
        assert seen["log_lines_dropped_total"] >= 15
        # The last scrape's line is written just after its answer.
        until("the scrape's line", lambda: service.log_lines()[-1].get("path") == demo.metrics)
        logged = service.log_lines()

        redis_server.start()  # same port, empty
        arrived = until(
            "the queued lines after the restart",
            lambda: redis_server.lines(key)[4:] and redis_server.lines(key),
            timeout=20,
        )
        # The newest five, in order: what was queued when the server came back (the last scrape's line last).
        assert arrived == logged[-5:]
        assert arrived[-1]["path"] == demo.metrics
    finally:
        stop(service.proc)


def test_sigterm_flushes_the_queue_without_waiting_for_the_backoff(queued_demo, redis_server, tmp_path):
    demo = queued_demo
    service = demo.run(tmp_path, LOG_REDIS_URL=redis_server.url())
    key = f"logs:{demo.name}"
    try:
        requests.get(service.url + "/", timeout=5)
        # The request line is written after the answer: wait for it, then for the list to catch up.
        until("the request line", lambda: service.requests_logged())
        until("stdout's lines in the list", lambda: redis_server.lines(key) == service.log_lines())
        before = len(service.log_lines())
        redis_server.stop()
        for _ in range(30):
            requests.get(service.url + "/", timeout=5)
        # Four failed attempts (0.1 + 0.2 + 0.4 + 0.8 s): the sender now waits 1.6 s before its next one.
        counted(service, demo, "log_push_errors_total", 4)
        redis_server.start()
        began = time.monotonic()
        assert service.terminate(timeout=15) in demo.exit_on_sigterm
        assert time.monotonic() - began < 1.5
        stdout = service.log_lines()
        assert len(stdout) - before >= 33  # 30 requests, the scrapes, "shutting down", "stopped"
        assert redis_server.lines(key) == stdout[before:]
    finally:
        stop(service.proc)


def test_php_hello_requests_stay_fast_while_the_log_server_is_down(redis_server, tmp_path):
    argv, env = php_server(tmp_path)
    service = start(argv, tmp_path, {**env, "LOG_REDIS_URL": redis_server.url()}, name="php-hello")
    demo = Demo("php-hello", argv, env, "/healthz", "/metrics", (0,))
    try:
        assert timed_get(service.url + "/") < 0.5
        until("the first line", lambda: redis_server.lines("logs:php-hello"))
        redis_server.stop()
        slowest = max(timed_get(service.url + "/") for _ in range(10))
        assert slowest < 0.5, f"a request took {slowest:.2f}s with the log server down"
        # Nothing outlives a request to retry with: each of the ten lines is lost, and counted.
        assert counters(service, demo) == {
            "log_lines_pushed_total": 1,
            "log_lines_dropped_total": 10,
            "log_push_errors_total": 10,
        }
        redis_server.start()
        requests.get(service.url + "/", timeout=5)
        back = until("a line after the restart", lambda: redis_server.lines("logs:php-hello"))
        # The scrape's line may have gone to the stopped server or, by a few ms, to the restarted one.
        assert [line["path"] for line in back] in (["/"], ["/metrics", "/"])
    finally:
        stop(service.proc)


def test_a_refused_line_is_counted_and_not_retried(demo, redis_server, tmp_path):
    # redis-server refuses RPUSH to a key holding a string (-WRONGTYPE), as the proxy refuses a push with
    # -ERR when Kafka does not acknowledge it in time.
    key = f"logs:{demo.name}"
    with redis.Redis(port=redis_server.port) as client:
        client.set(key, "not a list")
    service = demo.run(tmp_path, LOG_REDIS_URL=redis_server.url())
    try:
        slowest = max(timed_get(service.url + "/") for _ in range(5))
        assert slowest < 0.75
        seen = counted(service, demo, "log_push_errors_total", 5)
        assert (
            seen["log_lines_dropped_total"] == seen["log_push_errors_total"]
            and seen["log_lines_pushed_total"] == 0
        )
        refused = [line for line in service.requests_logged() if line["path"] == "/"]
        assert len(refused) == 5

        with redis.Redis(port=redis_server.port) as client:
            client.delete(key)
        assert requests.get(service.url + demo.health, timeout=5).status_code == 200
        arrived = until(
            "the next line",
            lambda: [line for line in redis_server.lines(key) if line.get("path") == demo.health],
        )
        assert len(arrived) == 1
        # The same connection goes on, and what was refused stays refused (a retry could duplicate a line
        # that the proxy's producer still delivers).
        assert not [line for line in redis_server.lines(key) if line in refused]
    finally:
        stop(service.proc)


def test_a_log_server_that_never_answers_slows_no_request(demo, tmp_path):
    with silent_server() as hung:
        port = hung.getsockname()[1]
        service = demo.run(tmp_path, LOG_REDIS_URL=f"redis://127.0.0.1:{port}", LOG_PUSH_TIMEOUT_MS="1500")
        try:
            if demo.name == "php-hello":
                # It answers with a length before it pushes, so its client is done before the push times out;
                # but its single-process server takes the next request only once that push gave up.
                count = 1
            else:
                count = 20
                requests.get(
                    service.url + demo.health, timeout=10
                )  # a cold JVM's first answer is slow anyway
            # A request that waited for its push would take the push's timeout: 1.5 s (php) or 2 s.
            slowest = max(timed_get(service.url + "/") for _ in range(count))
            assert slowest < 0.75, f"a request took {slowest:.2f}s with a hung log server"
            until("the timeout to be counted", lambda: counters(service, demo)["log_push_errors_total"] >= 1)
            began = time.monotonic()
            assert service.terminate(timeout=15) in demo.exit_on_sigterm
            # go/java: the flush on SIGTERM gives up after about 2 s.
            assert time.monotonic() - began < 5
        finally:
            stop(service.proc)


def test_a_bad_log_url_leaves_the_service_serving(queued_demo, tmp_path):
    service = queued_demo.run(tmp_path, LOG_REDIS_URL="http://127.0.0.1:1/")
    try:
        assert requests.get(service.url + "/", timeout=5).status_code == 200
        said = until(
            "the warning", lambda: [x for x in service.log_lines() if x["msg"] == "log push disabled"]
        )
        assert "redis://" in said[0]["error"]
        assert counters(service, queued_demo)["log_push_errors_total"] == 0
    finally:
        stop(service.proc)
