"""The release page's step bar: where a failed release stopped is the red step, not an extra one."""

from deploys.choices import ReleaseStatus
from deploys.models import Release
from deploys.selectors import release_steps


def states(release: Release) -> list[tuple[str, str]]:
    return [(step["status"], step["state"]) for step in release_steps(release)]


def test_a_build_failure_marks_the_build_step():
    release = Release(environment="test", status=ReleaseStatus.FAILED, jenkins_build=7, attempts=2)
    assert states(release) == [
        ("submitted", "done"),
        ("tagging", "done"),
        ("building", "failed"),
        ("built", "pending"),
        ("deploying", "pending"),
        ("deployed", "pending"),
        ("failed", "failed"),
    ]


def test_a_rollout_failure_marks_the_deploy_step():
    release = Release(environment="test", status=ReleaseStatus.FAILED, jenkins_build=7, image_digest="d")
    assert [s for s in states(release) if s[1] == "failed"] == [("deploying", "failed"), ("failed", "failed")]
    assert ("deployed", "pending") in states(release)


def test_a_tag_failure_and_an_early_cancel():
    tagging = Release(environment="test", status=ReleaseStatus.FAILED, attempts=1)
    assert states(tagging)[:3] == [("submitted", "done"), ("tagging", "failed"), ("building", "pending")]
    cancelled = Release(environment="test", status=ReleaseStatus.CANCELLED)
    assert states(cancelled)[0] == ("submitted", "failed")
    assert states(cancelled)[-1] == ("cancelled", "failed")


def test_a_running_and_a_deployed_release():
    building = Release(environment="test", status=ReleaseStatus.BUILDING)
    assert states(building)[:4] == [
        ("submitted", "done"),
        ("tagging", "done"),
        ("building", "current"),
        ("built", "pending"),
    ]
    deployed = Release(environment="prod", status=ReleaseStatus.DEPLOYED, image_digest="sha256:ab")
    assert states(deployed) == [("submitted", "done"), ("deploying", "done"), ("deployed", "done")]
