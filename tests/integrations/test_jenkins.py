"""JenkinsClient against the Jenkins stand-in (builds really run in bash), through real python-jenkins."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET  # noqa: S405 - parsing our own output

import jenkins
import pytest

from integrations.errors import (
    Conflict,
    IntegrationError,
    Invalid,
    NotFound,
    ServerError,
    Unauthorized,
    Unreachable,
)
from integrations.jenkins import BuildInfo, JenkinsClient, render_freestyle_config
from sandbox.jenkins import JenkinsStandin
from tests.fixtures.standins import JENKINS_TOKEN, JENKINS_USER, freestyle_xml

pytestmark = pytest.mark.standins

MARKER = "OPSPORTAL_RUN"
TEMPLATE = freestyle_xml(["echo template step"], {"GIT_REF": "main"}, description="portal template")


@pytest.fixture
def client(jenkins_standin: JenkinsStandin) -> JenkinsClient:
    jenkins_standin.create_job("template", TEMPLATE)
    return JenkinsClient(jenkins_standin.url, JENKINS_USER, JENKINS_TOKEN, timeout=10)


def _transform(shell: str):
    def transform(current: str) -> str:
        return render_freestyle_config(
            current,
            description="managed by OpsPortal",
            parameters=[("GIT_REF", "main"), (MARKER, "")],
            shell=shell,
        )

    return transform


def _wait_done(client: JenkinsClient, job: str, number: int, timeout: float = 60) -> BuildInfo:
    deadline = time.monotonic() + timeout
    while (info := client.build_info(job, number)).building:
        assert time.monotonic() < deadline, f"{job} #{number} still building"
        time.sleep(0.1)
    return info


def _retrying(fn, attempts: int = 5):
    """What a Celery task does, squeezed into a loop: retry transient errors, re-raise permanent ones."""
    for attempt in range(attempts):
        try:
            return fn()
        except IntegrationError as exc:
            if exc.permanent or attempt == attempts - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


# --- render_freestyle_config --------------------------------------------------------------------------


def test_render_sets_parameters_and_one_escaped_shell_step() -> None:
    shell = 'echo "<b>&amp;</b>" && test "$GIT_REF" != "]]>"'
    xml = render_freestyle_config(
        TEMPLATE, description="d <&>", parameters=[("GIT_REF", "v1"), (MARKER, "")], shell=shell
    )
    root = ET.fromstring(xml)  # noqa: S314
    assert root.findtext("description") == "d <&>"
    names = [d.findtext("name") for d in root.iter("hudson.model.StringParameterDefinition")]
    assert names == ["GIT_REF", MARKER]
    assert root.find(".//hudson.model.StringParameterDefinition/defaultValue").text == "v1"
    commands = [c.findtext("command") for c in root.find("builders")]
    assert commands == [shell]
    assert root.find("scm").get("class") == "hudson.scm.NullSCM"  # the rest of the template is kept
    assert len(root.findall("properties/hudson.model.ParametersDefinitionProperty")) == 1


def test_render_rejects_non_freestyle_and_bad_xml() -> None:
    with pytest.raises(Invalid):
        render_freestyle_config("<flow-definition/>", description="", parameters=[], shell="true")  # noqa: S604
    with pytest.raises(Invalid):
        render_freestyle_config("<project>", description="", parameters=[], shell="true")  # noqa: S604


# --- jobs ---------------------------------------------------------------------------------------------


def test_ensure_job_copies_once_and_always_reconfigures(
    client: JenkinsClient, jenkins_standin: JenkinsStandin
) -> None:
    first = client.ensure_job("svc-build", "template", _transform("echo first"))
    assert first.created is True and first.buildable is True  # the save lifted the copy's hold-off
    assert "echo first" in client.job_config("svc-build")
    second = client.ensure_job("svc-build", "template", _transform("echo second"))
    assert second.created is False and second.buildable is True
    config = client.job_config("svc-build")
    assert "echo second" in config and "echo first" not in config
    assert "template step" in client.job_config("template")  # the template is untouched
    assert sorted(jenkins_standin.jobs) == ["svc-build", "template"]


def test_ensure_job_with_missing_template_is_not_found(client: JenkinsClient) -> None:
    with pytest.raises((NotFound, Invalid)) as excinfo:
        client.ensure_job("svc-build", "no-such-template", _transform("true"))
    assert excinfo.value.permanent


def test_copied_job_not_saved_is_conflict(client: JenkinsClient, jenkins_client: jenkins.Jenkins) -> None:
    jenkins_client.copy_job("template", "raw-copy")  # no reconfig: held off like a real copy
    with pytest.raises(Conflict) as excinfo:
        client.trigger("raw-copy", {"GIT_REF": "main"})
    assert excinfo.value.status == 409 and excinfo.value.permanent


# --- builds -------------------------------------------------------------------------------------------


def test_trigger_then_retry_finds_the_same_build(
    client: JenkinsClient, jenkins_standin: JenkinsStandin
) -> None:
    client.ensure_job("svc-build", "template", _transform('echo "building $GIT_REF for $OPSPORTAL_RUN"'))
    run = "release-17-1"

    def step() -> int:  # the idempotent task body
        number = client.find_build_by_marker("svc-build", MARKER, run)
        if number is None:
            queue_id = client.trigger("svc-build", {"GIT_REF": "v1.0.0", MARKER: run})
            number = client.wait_for_queue(queue_id, timeout=30, poll=0.05)
        return number

    assert client.find_build_by_marker("svc-build", MARKER, run) is None
    number = step()
    again = step()  # the "retry": finds the build instead of starting another
    assert again == number
    info = _wait_done(client, "svc-build", number)
    assert info.result == "SUCCESS" and info.succeeded and info.number == number
    assert step() == number  # still found once finished
    assert len(jenkins_standin.jobs["svc-build"].builds) == 1
    text = client.console_chunk("svc-build", number).text
    assert f"building v1.0.0 for {run}" in text
    assert client.find_build_by_marker("svc-build", MARKER, "release-17-2") is None


def test_find_build_by_marker_sees_a_queued_item(
    client: JenkinsClient, jenkins_standin: JenkinsStandin
) -> None:
    client.ensure_job("svc-build", "template", _transform("sleep 1"))
    first_queue = client.trigger("svc-build", {MARKER: "r-1"})
    first = client.wait_for_queue(first_queue, timeout=30, poll=0.05)
    queue_id = client.trigger("svc-build", {MARKER: "r-2"})  # blocked behind the running build
    assert client.find_queued_by_marker("svc-build", MARKER, "r-2") == queue_id
    number = client.find_build_by_marker("svc-build", MARKER, "r-2", queue_timeout=30)
    assert number == first + 1
    assert client.wait_for_queue(queue_id, timeout=5) == number


def test_wait_for_cancelled_queue_item_is_conflict(
    client: JenkinsClient, jenkins_client: jenkins.Jenkins
) -> None:
    client.ensure_job("svc-build", "template", _transform("sleep 2"))
    client.wait_for_queue(client.trigger("svc-build", {MARKER: "r-1"}), timeout=30, poll=0.05)
    queue_id = client.trigger("svc-build", {MARKER: "r-2"})
    jenkins_client.cancel_queue(queue_id)
    with pytest.raises(Conflict):
        client.wait_for_queue(queue_id, timeout=10, poll=0.05)


def test_console_chunk_streams_until_complete(client: JenkinsClient) -> None:
    client.ensure_job(
        "svc-build", "template", _transform("for i in 1 2 3 4 5; do echo line-$i; sleep 0.3; done")
    )
    number = client.wait_for_queue(client.trigger("svc-build", {MARKER: "log-1"}), timeout=30, poll=0.05)
    start, text, chunks_with_more = 0, "", 0
    deadline = time.monotonic() + 60
    while True:
        chunk = client.console_chunk("svc-build", number, start)
        assert chunk.next_start >= start
        text += chunk.text
        start = chunk.next_start
        if not chunk.more:
            break
        chunks_with_more += 1
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert chunks_with_more >= 2  # it really was progressive
    assert [ln for ln in text.splitlines() if ln.startswith("line-")] == [f"line-{i}" for i in range(1, 6)]
    assert text.rstrip().endswith("Finished: SUCCESS")
    assert start == len(text.encode())
    assert client.build_info("svc-build", number).result == "SUCCESS"


def test_failing_shell_is_failure(client: JenkinsClient) -> None:
    client.ensure_job("svc-build", "template", _transform("echo about to fail\nexit 3"))
    number = client.wait_for_queue(client.trigger("svc-build", {MARKER: "fail-1"}), timeout=30, poll=0.05)
    info = _wait_done(client, "svc-build", number)
    assert info.result == "FAILURE" and not info.succeeded and info.duration_ms >= 0
    assert info.url.endswith(f"/job/svc-build/{number}/")


def test_stop_aborts_the_build(client: JenkinsClient) -> None:
    client.ensure_job("svc-build", "template", _transform("echo started; sleep 60"))
    number = client.wait_for_queue(client.trigger("svc-build", {MARKER: "stop-1"}), timeout=30, poll=0.05)
    client.stop("svc-build", number)
    assert _wait_done(client, "svc-build", number, timeout=20).result == "ABORTED"


def test_missing_job_and_build_are_not_found(client: JenkinsClient) -> None:
    with pytest.raises(NotFound):
        client.build_info("template", 99)
    with pytest.raises(NotFound):
        client.trigger("no-such-job", {MARKER: "x"})
    with pytest.raises(NotFound):
        client.job_info("no-such-job")


# --- faults -------------------------------------------------------------------------------------------


def test_injected_500s_are_transient_and_a_retry_recovers(
    client: JenkinsClient, jenkins_standin: JenkinsStandin
) -> None:
    client.ensure_job("svc-build", "template", _transform("echo ok"))
    number = client.wait_for_queue(client.trigger("svc-build", {MARKER: "f-1"}), timeout=30, poll=0.05)
    _wait_done(client, "svc-build", number)

    jenkins_standin.inject_fault(rf"^/job/svc-build/{number}/api/json", status=500, count=1)
    with pytest.raises(ServerError) as excinfo:
        client.build_info("svc-build", number)
    assert excinfo.value.permanent is False and excinfo.value.status == 500

    jenkins_standin.inject_fault(rf"^/job/svc-build/{number}/api/json", status=500, count=2)
    assert _retrying(lambda: client.build_info("svc-build", number)).result == "SUCCESS"

    jenkins_standin.inject_fault(r"^/job/svc-build/buildWithParameters", status=503, count=2, method="POST")
    queue_id = _retrying(lambda: client.trigger("svc-build", {MARKER: "f-2"}))
    assert client.wait_for_queue(queue_id, timeout=30, poll=0.05) == number + 1

    jenkins_standin.inject_fault(r"^/queue/api/json", status=429, count=1)
    with pytest.raises(ServerError) as excinfo:
        client.find_queued_by_marker("svc-build", MARKER, "f-2")
    assert excinfo.value.retry_after is None

    # python-jenkins keeps the response of a 429/503, so the wait Jenkins (or its proxy) asks for reaches us.
    jenkins_standin.inject_fault(r"^/queue/api/json", status=429, count=1, retry_after=7)
    with pytest.raises(ServerError) as excinfo:
        client.find_queued_by_marker("svc-build", MARKER, "f-2")
    assert excinfo.value.status == 429 and excinfo.value.retry_after == 7
    jenkins_standin.inject_fault(r"^/job/svc-build/buildWithParameters", status=503, retry_after=3)
    with pytest.raises(ServerError) as excinfo:
        client.trigger("svc-build", {MARKER: "f-3"})
    assert excinfo.value.status == 503 and excinfo.value.retry_after == 3


def test_bad_token_is_unauthorized_and_permanent(jenkins_standin: JenkinsStandin) -> None:
    bad = JenkinsClient(jenkins_standin.url, JENKINS_USER, "wrong-token", timeout=5)
    with pytest.raises(Unauthorized) as excinfo:
        bad.build_info("template", 1)
    assert excinfo.value.permanent and excinfo.value.status == 401


def test_stopped_server_is_unreachable_and_transient(jenkins_standin: JenkinsStandin) -> None:
    client = JenkinsClient(jenkins_standin.url, JENKINS_USER, JENKINS_TOKEN, timeout=5)
    jenkins_standin.stop()
    with pytest.raises(Unreachable) as excinfo:
        client.trigger("template", {"GIT_REF": "main"})
    assert excinfo.value.permanent is False
