"""The rendered preStop hook run for real: its shell script (clusters.workload.manifests) in a PID namespace
of its own (so "PID 1's stderr", where the hook copies its message for the container log, is bubblewrap's),
with only the HTTP clients an image might carry on its PATH, against a real HTTP endpoint. The same
script runs in pods in tests/sandbox/test_prestop_pods.py."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from clusters.workload.manifests import PRESTOP_HTTP_POST, WorkloadSpec, render
from tests.fixtures.standins import require_tools
from tests.helpers.http_endpoint import Endpoint, http_endpoint
from tests.helpers.prestop import build_http_post
from tests.helpers.workload import make

SLEEP = 1
BODY = b'{"status":"OUT_OF_SERVICE"}'


@pytest.fixture(scope="module")
def http_post(tmp_path_factory) -> Path:
    return build_http_post(tmp_path_factory.mktemp("prestop-helper"))


def hook_spec(endpoint: Endpoint, path: str = "/actuator/serviceregistry") -> WorkloadSpec:
    return make(
        language="java",
        eureka_enabled=True,
        container_port=endpoint.port,
        eureka_deregister_path=path,
        overrides=(("prestop_sleep_seconds", SLEEP),),
    )


def run_hook(spec: WorkloadSpec, tmp_path: Path, *, tools: tuple[str, ...], helper: Path | None):
    """The Deployment's preStop command, with ``tools`` (wget: busybox's, curl: the host's) and the helper
    at its image path when given; (completed process, seconds it took)."""
    require_tools("bwrap")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    sources = {
        "sleep": "/bin/busybox",
        "wget": "/bin/busybox",
        "timeout": "/bin/busybox",
        "curl": shutil.which("curl") or "/usr/bin/curl",
    }
    for tool in ("sleep", *tools):
        require_tools(Path(sources[tool]).name)
        (bin_dir / tool).symlink_to(sources[tool])
    deployment = next(o for o in render(spec).objects if o["kind"] == "Deployment")
    command = deployment["spec"]["template"]["spec"]["containers"][0]["lifecycle"]["preStop"]["exec"][
        "command"
    ]
    sandbox = [
        shutil.which("bwrap") or "bwrap",
        "--dev-bind",
        "/",
        "/",
        "--unshare-pid",
        "--proc",
        "/proc",
        "--die-with-parent",
    ]
    sandbox += ["--tmpfs", "/opt"]
    if helper is not None:
        sandbox += ["--ro-bind", str(helper), PRESTOP_HTTP_POST]
    started = time.monotonic()
    done = subprocess.run(
        [*sandbox, "--", *command], env={"PATH": str(bin_dir)}, capture_output=True, text=True, timeout=60
    )
    return done, time.monotonic() - started


@pytest.mark.parametrize(
    ("tools", "with_helper", "agent"),
    [
        ((), True, "opsportal-http-post"),  # an image with neither wget nor curl
        (("wget", "curl"), True, "opsportal-http-post"),  # the helper is preferred
        (("wget", "curl"), False, "Wget"),
        (("curl",), False, "curl/"),
    ],
)
def test_the_hook_sets_out_of_service_with_the_first_client_it_finds_then_waits(
    http_post, tmp_path, tools, with_helper, agent
):
    with http_endpoint() as endpoint:
        done, elapsed = run_hook(
            hook_spec(endpoint), tmp_path, tools=tools, helper=http_post if with_helper else None
        )
    assert done.returncode == 0, done.stdout + done.stderr
    [received] = endpoint.received
    assert (received.method, received.path, received.body) == ("POST", "/actuator/serviceregistry", BODY)
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers["User-Agent"].startswith(agent)
    url = endpoint.url("/actuator/serviceregistry")
    message = f"opsportal preStop: OUT_OF_SERVICE in Eureka (POST {url}); waiting {SLEEP} s before SIGTERM\n"
    assert done.stdout == message
    assert done.stderr == message  # the copy for the container's log
    assert elapsed >= SLEEP


@pytest.mark.parametrize("with_helper", [True, False])
def test_a_failed_deregistration_still_waits_then_fails_the_hook_with_its_cause(
    http_post, tmp_path, with_helper
):
    # The pre-2020 path on a modern Spring Cloud.
    with http_endpoint(status=404) as endpoint:
        spec = hook_spec(endpoint, "/actuator/service-registry")
        done, elapsed = run_hook(spec, tmp_path, tools=("wget",), helper=http_post if with_helper else None)
    assert done.returncode == 1
    assert len(endpoint.received) == 1
    url = endpoint.url("/actuator/service-registry")
    assert done.stdout.startswith(f"opsportal preStop: de-registration failed (POST {url}): ")
    assert "404 Not Found" in done.stdout
    assert done.stdout.endswith(f"; waiting {SLEEP} s before SIGTERM all the same\n")
    assert done.stderr == done.stdout
    assert elapsed >= SLEEP


def test_without_any_http_client_the_hook_says_so_and_fails_after_the_wait(tmp_path):
    with http_endpoint() as endpoint:
        done, elapsed = run_hook(hook_spec(endpoint), tmp_path, tools=(), helper=None)
    assert done.returncode == 1
    assert endpoint.received == []
    assert (
        "no HTTP client in the image: neither /opt/opsportal/bin/http-post nor wget nor curl" in done.stdout
    )
    assert elapsed >= SLEEP


@pytest.mark.parametrize(("tools", "with_helper"), [((), True), (("wget", "timeout"), False)])
def test_an_endpoint_that_hangs_costs_at_most_the_deregistration_timeout(
    http_post, tmp_path, tools, with_helper
):
    with http_endpoint(delay=20) as endpoint:
        done, elapsed = run_hook(
            hook_spec(endpoint), tmp_path, tools=tools, helper=http_post if with_helper else None
        )
    assert done.returncode == 1
    assert "de-registration failed" in done.stdout
    # DEREGISTER_TIMEOUT (5 s) + the wait: what terminationGracePeriodSeconds reserves before the shutdown.
    assert SLEEP + 4.5 <= elapsed < SLEEP + 8, elapsed
