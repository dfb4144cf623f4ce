"""The Jenkins stand-in, driven by the real python-jenkins client; job shell steps really run with bash."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import jenkins
import pytest
import requests

from sandbox.jenkins import JenkinsStandin
from tests.fixtures.standins import (
    JENKINS_TOKEN,
    JENKINS_USER,
    freestyle_xml,
    wait_for_build_number,
    wait_for_result,
)

pytestmark = pytest.mark.standins

TEMPLATE = freestyle_xml(
    [
        'echo "ref=$GIT_REF service=$SERVICE" > "$WORKSPACE/params.txt"\n'
        'env | grep -E "^(BUILD_NUMBER|JOB_NAME|WORKSPACE)=" | sort > "$WORKSPACE/env.txt"\n'
        "for i in 1 2 3; do echo line-$i; sleep 0.3; done\n"
    ],
    params={"GIT_REF": "main", "SERVICE": "unset"},
    description="portal template",
)


def progressive(client: jenkins.Jenkins, url: str, start: int) -> requests.Response:
    return client.jenkins_request(requests.Request("GET", url, params={"start": start}))


def test_whoami_version_and_job_info(jenkins_client: jenkins.Jenkins) -> None:
    assert jenkins_client.get_whoami()["id"] == JENKINS_USER
    assert jenkins_client.get_version().startswith("2.")
    jenkins_client.create_job("tpl", TEMPLATE)
    assert jenkins_client.job_exists("tpl") is True
    assert jenkins_client.job_exists("missing") is None  # python-jenkins returns None, not False, on 404
    info = jenkins_client.get_job_info("tpl")
    assert info["_class"] == "hudson.model.FreeStyleProject"
    assert info["buildable"] is True and info["color"] == "notbuilt" and info["nextBuildNumber"] == 1
    (definitions,) = [p["parameterDefinitions"] for p in info["property"] if "parameterDefinitions" in p]
    assert [(d["name"], d["defaultParameterValue"]["value"]) for d in definitions] == [
        ("GIT_REF", "main"),
        ("SERVICE", "unset"),
    ]
    assert "<hudson.tasks.Shell>" in jenkins_client.get_job_config("tpl")
    with pytest.raises(jenkins.JenkinsException, match="already exists"):
        jenkins_client.create_job("tpl", TEMPLATE)
    assert [j["name"] for j in jenkins_client.get_jobs()] == ["tpl"]


def test_anonymous_and_bad_token_are_rejected(jenkins_standin: JenkinsStandin) -> None:
    anonymous = jenkins.Jenkins(jenkins_standin.url)
    with pytest.raises(jenkins.BadHTTPException):
        anonymous.get_version()  # a secured Jenkins answers 403 to the unauthenticated get_version()
    wrong = jenkins.Jenkins(jenkins_standin.url, username=JENKINS_USER, password="nope")
    with pytest.raises(jenkins.JenkinsException, match="401"):
        wrong.get_whoami()


def test_copy_build_progressive_log_and_params(
    jenkins_client: jenkins.Jenkins, jenkins_standin: JenkinsStandin
) -> None:
    jenkins_client.create_job("tpl", TEMPLATE)
    jenkins_client.copy_job("tpl", "order-svc")
    assert jenkins_client.get_job_info("order-svc")["buildable"] is False
    with pytest.raises(requests.HTTPError) as excinfo:
        jenkins_client.build_job("order-svc", {"GIT_REF": "v1.0.0"})
    assert excinfo.value.response.status_code == 409
    # Saving the copied config once makes it buildable, as in real Jenkins.
    jenkins_client.reconfig_job("order-svc", jenkins_client.get_job_config("order-svc"))

    queue_id = jenkins_client.build_job(
        "order-svc", {"GIT_REF": "v1.0.0", "SERVICE": "order", "EXTRA": "dropped"}
    )
    item = jenkins_client.get_queue_item(queue_id)
    assert item["_class"] == "hudson.model.Queue$WaitingItem" and "quiet period" in item["why"]
    assert item["params"] == "\nGIT_REF=v1.0.0\nSERVICE=order"
    number = wait_for_build_number(jenkins_client, queue_id)
    assert jenkins_client.get_queue_item(queue_id)["_class"] == "hudson.model.Queue$LeftItem"

    url = f"{jenkins_standin.url}job/order-svc/{number}/logText/progressiveText"
    text, start, polls_with_more = b"", 0, 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = progressive(jenkins_client, url, start)
        assert response.status_code == 200
        size = int(response.headers["X-Text-Size"])
        assert size == start + len(response.content)  # a byte offset, the next start
        text += response.content
        start = size
        if response.headers.get("X-More-Data") != "true":
            break
        polls_with_more += 1
        assert response.content == b"" or response.content.endswith(b"\n")  # whole lines while running
        time.sleep(0.2)
    assert polls_with_more >= 2
    decoded = text.decode()
    assert decoded.index("line-1") < decoded.index("line-3") < decoded.index("Finished: SUCCESS")
    assert decoded == jenkins_client.get_build_console_output("order-svc", number)
    tail = progressive(jenkins_client, url, start)
    assert (
        tail.content == b""
        and "X-More-Data" not in tail.headers
        and int(tail.headers["X-Text-Size"]) == start
    )
    restarted = progressive(jenkins_client, url, start + 10_000)
    assert restarted.content == text  # a start past the end restarts from 0

    info = wait_for_result(jenkins_client, "order-svc", number)
    assert info["result"] == "SUCCESS" and info["duration"] > 0 and info["queueId"] == queue_id
    (params,) = [
        a["parameters"] for a in info["actions"] if a.get("_class") == "hudson.model.ParametersAction"
    ]
    assert {p["name"]: p["value"] for p in params} == {"GIT_REF": "v1.0.0", "SERVICE": "order"}

    workspace = Path(jenkins_standin.root / "workspace" / "order-svc" / str(number))
    assert (workspace / "params.txt").read_text() == "ref=v1.0.0 service=order\n"
    assert (workspace / "env.txt").read_text().splitlines() == [
        f"BUILD_NUMBER={number}",
        "JOB_NAME=order-svc",
        f"WORKSPACE={workspace}",
    ]
    job = jenkins_client.get_job_info("order-svc")
    assert job["color"] == "blue" and job["lastSuccessfulBuild"]["number"] == number


def test_failing_shell_is_failure_with_console_tail(jenkins_client: jenkins.Jenkins) -> None:
    jenkins_client.create_job(
        "broken", freestyle_xml(["echo compiling", "echo 'boom: missing go.sum' >&2; exit 3"])
    )
    number = wait_for_build_number(jenkins_client, jenkins_client.build_job("broken"))
    assert wait_for_result(jenkins_client, "broken", number)["result"] == "FAILURE"
    console = jenkins_client.get_build_console_output("broken", number)
    assert console.splitlines()[-4:] == [
        "boom: missing go.sum",
        "+ exit 3",
        "Build step 'Execute shell' marked build as failure",
        "Finished: FAILURE",
    ]
    assert jenkins_client.get_job_info("broken")["color"] == "red"


def test_stop_kills_the_process_group(jenkins_client: jenkins.Jenkins, tmp_path: Path) -> None:
    marker = tmp_path / "survived"
    # The backgrounded child shares the build's process group, so stop must take it down too.
    command = f"(sleep 3; touch {marker}) &\necho started\nsleep 60\n"
    jenkins_client.create_job("long", freestyle_xml([command]))
    number = wait_for_build_number(jenkins_client, jenkins_client.build_job("long"))
    deadline = time.monotonic() + 10
    while "started" not in jenkins_client.get_build_console_output("long", number):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert jenkins_client.get_build_info("long", number)["building"] is True
    began = time.monotonic()
    jenkins_client.stop_build("long", number)
    info = wait_for_result(jenkins_client, "long", number, timeout=15)
    assert info["result"] == "ABORTED" and time.monotonic() - began < 10
    assert jenkins_client.get_build_console_output("long", number).endswith("Finished: ABORTED\n")
    time.sleep(3.5)
    assert not marker.exists()


def test_cancel_queued_item_and_identical_requests_merge(
    jenkins_client: jenkins.Jenkins, jenkins_standin: JenkinsStandin
) -> None:
    jenkins_standin.quiet_period = 30.0
    jenkins_client.create_job("slow", freestyle_xml(["true"], params={"GIT_REF": "main"}))
    first = jenkins_client.build_job("slow", {"GIT_REF": "v1"})
    assert jenkins_client.build_job("slow", {"GIT_REF": "v1"}) == first
    other = jenkins_client.build_job("slow", {"GIT_REF": "v2"})
    assert other != first
    jenkins_client.cancel_queue(first)
    item = jenkins_client.get_queue_item(first)
    assert item["_class"] == "hudson.model.Queue$LeftItem"
    assert item["cancelled"] is True and item["executable"] is None
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        jenkins_client.get_queue_item(9999)


def test_injected_500s_reach_the_client(
    jenkins_client: jenkins.Jenkins, jenkins_standin: JenkinsStandin
) -> None:
    jenkins_client.create_job("flaky", freestyle_xml(["true"]))
    jenkins_standin.inject_fault(r"^/job/flaky/api/json", status=500, count=2)
    for _ in range(2):
        with pytest.raises(jenkins.JenkinsException, match=r"\[500\]"):
            jenkins_client.get_job_info("flaky")
    assert jenkins_client.get_job_info("flaky")["name"] == "flaky"

    # The same through the admin endpoint, as `make run` users would do it.
    session = requests.Session()
    session.auth = (JENKINS_USER, JENKINS_TOKEN)
    admin = session.post(
        f"{jenkins_standin.url}_standin/faults",
        json={"pattern": "/buildWithParameters|/build$", "status": 503, "count": 1},
        timeout=5,
    )
    assert admin.status_code == 200
    with pytest.raises(requests.HTTPError) as excinfo:
        jenkins_client.build_job("flaky")
    assert excinfo.value.response.status_code == 503
    assert wait_for_build_number(jenkins_client, jenkins_client.build_job("flaky")) == 1


def test_shell_metacharacters_in_parameters_are_never_executed(jenkins_client: jenkins.Jenkins) -> None:
    pwned = Path(f"/tmp/pwned-{uuid.uuid4().hex}")
    hostile = f"main;touch {pwned} $(touch {pwned}) `touch {pwned}` && touch {pwned}"
    jenkins_client.create_job(
        "quoted",
        freestyle_xml(['git_ref="$GIT_REF"\nprintf "ref=[%s]\\n" "$git_ref"'], params={"GIT_REF": "main"}),
    )
    number = wait_for_build_number(jenkins_client, jenkins_client.build_job("quoted", {"GIT_REF": hostile}))
    assert wait_for_result(jenkins_client, "quoted", number)["result"] == "SUCCESS"
    assert f"ref=[{hostile}]" in jenkins_client.get_build_console_output("quoted", number)
    assert not pwned.exists()


def test_jobs_are_loaded_from_disk_on_restart(tmp_path: Path) -> None:
    first = JenkinsStandin(tmp_path / "j", JENKINS_USER, JENKINS_TOKEN)
    first.create_job("seeded", freestyle_xml(["true"]))
    second = JenkinsStandin(tmp_path / "j", JENKINS_USER, JENKINS_TOKEN)
    assert "seeded" in second.jobs and second.jobs["seeded"].buildable


def test_a_restarted_standin_keeps_builds_console_and_queue_items(tmp_path: Path) -> None:
    def started(quiet_period: float) -> tuple[JenkinsStandin, jenkins.Jenkins]:
        standin = JenkinsStandin(tmp_path / "state", JENKINS_USER, JENKINS_TOKEN, quiet_period=quiet_period)
        standin.start()
        client = jenkins.Jenkins(standin.url, username=JENKINS_USER, password=JENKINS_TOKEN, timeout=10)
        client.get_whoami()
        return standin, client

    standin, client = started(0.1)
    client.create_job("svc", freestyle_xml(['echo "built $GIT_REF"'], params={"GIT_REF": "main"}))
    queue_id = client.build_job("svc", {"GIT_REF": "v1"})
    number = wait_for_build_number(client, queue_id)
    assert wait_for_result(client, "svc", number)["result"] == "SUCCESS"
    console = client.get_build_console_output("svc", number)
    assert "built v1" in console and "Finished: SUCCESS" in console
    standin.stop()
    # A queued request that has not left the queue when the stand-in stops (a long quiet period).
    standin, client = started(30.0)
    waiting_id = client.build_job("svc", {"GIT_REF": "v2"})
    standin.stop()

    standin, client = started(0.1)
    try:
        info = client.get_build_info("svc", number)
        assert (info["result"], info["building"], info["queueId"]) == ("SUCCESS", False, queue_id)
        assert {"name": "GIT_REF", "value": "v1"} in [
            {"name": p["name"], "value": p["value"]}
            for action in info["actions"]
            for p in action.get("parameters", [])
        ]
        assert client.get_build_console_output("svc", number) == console
        assert client.get_queue_item(queue_id)["executable"]["number"] == number
        assert client.get_job_info("svc")["firstBuild"]["number"] == number
        # The waiting item waits again and runs as the next build, not as a reused number.
        second = wait_for_build_number(client, waiting_id)
        assert second == number + 1
        assert wait_for_result(client, "svc", second)["result"] == "SUCCESS"
        assert "built v2" in client.get_build_console_output("svc", second)
        assert client.build_job("svc", {"GIT_REF": "v3"}) > waiting_id  # queue ids keep counting
    finally:
        standin.stop()


def test_a_build_running_when_the_standin_dies_reads_aborted_after_restart(tmp_path: Path) -> None:
    standin = JenkinsStandin(tmp_path / "state", JENKINS_USER, JENKINS_TOKEN, quiet_period=0.1)
    standin.start()
    client = jenkins.Jenkins(standin.url, username=JENKINS_USER, password=JENKINS_TOKEN, timeout=10)
    client.create_job("slow", freestyle_xml(["echo started; sleep 30"]))
    number = wait_for_build_number(client, client.build_job("slow"))
    assert client.get_build_info("slow", number)["building"] is True
    standin.stop()
    # What a killed stand-in leaves: the record of a build still running.
    record = tmp_path / "state" / "jobs" / "slow" / "builds" / str(number) / "build.json"
    record.write_text(record.read_text().replace('"building": false', '"building": true'))

    standin = JenkinsStandin(tmp_path / "state", JENKINS_USER, JENKINS_TOKEN, quiet_period=0.1)
    standin.start()
    try:
        client = jenkins.Jenkins(standin.url, username=JENKINS_USER, password=JENKINS_TOKEN, timeout=10)
        info = client.get_build_info("slow", number)
        assert (info["building"], info["result"]) == (False, "ABORTED")
        assert client.get_build_console_output("slow", number).endswith("Finished: ABORTED\n")
    finally:
        standin.stop()
