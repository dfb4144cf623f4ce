"""The preStop hook's static HTTP client (deploys/prestop/http-post.c) against a real HTTP endpoint: exit 0
on 2xx only, the cause on stderr otherwise, and never longer than its timeout."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.http_endpoint import http_endpoint
from tests.helpers.prestop import build_http_post

BODY = '{"status":"OUT_OF_SERVICE"}'


@pytest.fixture(scope="module")
def http_post(tmp_path_factory) -> Path:
    return build_http_post(tmp_path_factory.mktemp("prestop-helper"))


def run(http_post: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([str(http_post), *args], capture_output=True, text=True, timeout=timeout, env={})


def test_it_is_a_static_binary_that_needs_nothing_from_the_image(http_post):
    assert http_post.stat().st_mode & 0o111
    described = subprocess.run(["file", str(http_post)], capture_output=True, text=True).stdout
    if described:  # `file` is not installed everywhere
        assert "statically linked" in described
    assert subprocess.run(["ldd", str(http_post)], capture_output=True, text=True).returncode != 0


def test_a_2xx_answer_exits_0_after_posting_the_json_body(http_post):
    with http_endpoint() as endpoint:
        done = run(http_post, "-t", "5", endpoint.url("/actuator/serviceregistry"), BODY)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    [received] = endpoint.received
    assert (received.method, received.path, received.body.decode()) == (
        "POST",
        "/actuator/serviceregistry",
        BODY,
    )
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["Content-Length"] == str(len(BODY))
    assert received.headers["User-Agent"] == "opsportal-http-post"


def test_localhost_and_a_url_without_a_path_work(http_post):
    with http_endpoint(status=204) as endpoint:
        done = run(http_post, f"http://localhost:{endpoint.port}")
    assert done.returncode == 0, done.stderr
    assert [(r.path, r.body) for r in endpoint.received] == [("/", b"")]


def test_any_other_answer_exits_1_with_the_status_line(http_post):
    with http_endpoint(status=404) as endpoint:
        url = endpoint.url("/actuator/service-registry")
        done = run(http_post, url, BODY)
    assert done.returncode == 1
    assert done.stderr == f"http-post: POST {url}: answered: HTTP/1.0 404 Not Found\n"


def test_a_refused_connection_exits_1_with_the_cause(http_post):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        done = run(http_post, f"http://127.0.0.1:{port}/x", BODY)
    assert done.returncode == 1
    assert done.stderr == f"http-post: POST http://127.0.0.1:{port}/x: connect: Connection refused\n"


def test_an_endpoint_that_does_not_answer_is_given_up_after_the_timeout(http_post):
    with http_endpoint(delay=5) as endpoint:
        started = time.monotonic()
        done = run(http_post, "-t", "1", endpoint.url("/slow"), BODY)
        elapsed = time.monotonic() - started
    assert done.returncode == 1
    assert done.stderr.endswith(": timed out\n")
    assert 0.9 <= elapsed < 3, elapsed


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((), 2, "usage: http-post"),
        (("-t", "0", "http://127.0.0.1:1/"), 2, "usage: http-post"),
        (("http://127.0.0.1:1/", "a", "b"), 2, "usage: http-post"),
        (("https://127.0.0.1/",), 1, "only http:// URLs are supported"),
        (("http://example.com/",), 1, "the host must be an IPv4 address: example.com"),
        (("http://127.0.0.1:99999/",), 1, "bad port"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(http_post, args, code, message):
    done = run(http_post, *args)
    assert done.returncode == code
    assert message in done.stderr
