"""Following a Jenkins build by short polls (deploys.services.releases.release_build_poll) against the
Jenkins stand-in, whose builds really run in bash: each poll returns at once, a duplicate poll changes
nothing, and the build's timeout counts from its start, kept on the row."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from deploys import services
from deploys.choices import ReleaseStatus
from deploys.models import Release
from integrations.jenkins import JenkinsClient
from observability.models import AuditEvent, LiveEvent
from tests.fixtures.standins import JENKINS_TOKEN, JENKINS_USER, freestyle_xml
from tests.polling import until

pytestmark = [pytest.mark.django_db, pytest.mark.standins]


@pytest.fixture
def jenkins(jenkins_standin, settings) -> JenkinsClient:
    settings.JENKINS_URL = jenkins_standin.url
    settings.JENKINS_USER, settings.JENKINS_TOKEN = JENKINS_USER, JENKINS_TOKEN
    return JenkinsClient(jenkins_standin.url, JENKINS_USER, JENKINS_TOKEN, timeout=10)


def building(people, jenkins_standin, jenkins: JenkinsClient, commands: list[str]) -> Release:
    """A release in its build step, whose build (running ``commands``) has started in Jenkins."""
    jenkins_standin.create_job("orders", freestyle_xml(commands, {"X": ""}))
    number = jenkins.wait_for_queue(jenkins.trigger("orders", {"X": "1"}), timeout=30, poll=0.05)
    return Release.objects.create(
        project=people.project,
        environment="test",
        created_by=people.developer,
        version="v1",
        status=ReleaseStatus.BUILDING,
        jenkins_job="orders",
        jenkins_build=number,
        build_started_at=timezone.now(),
    )


def poll(release: Release, number: int | None = None) -> Release:
    services.release_build_poll(
        release_id=release.pk,
        run_token=str(release.run_token),
        poll=release.build_polls if number is None else number,
    )
    release.refresh_from_db()
    return release


def lines(release: Release) -> list[str]:
    """The build's output lines (the shell's trace lines, "+ echo …", left out)."""
    return release.console.splitlines()


def test_polls_return_at_once_and_a_duplicate_poll_appends_nothing(people, jenkins_standin, jenkins):
    release = building(
        people, jenkins_standin, jenkins, ['echo "first line"; sleep 3; echo "second line"; exit 3']
    )
    until("the first console line", lambda: "first line" in jenkins.console_chunk("orders", 1).text)

    started = time.monotonic()
    release = poll(release)
    assert time.monotonic() - started < 2  # the build runs on for 3 s; the poll did not wait for it
    assert release.status == ReleaseStatus.BUILDING and release.build_polls == 1
    assert lines(release).count("first line") == 1
    seen = (release.console, release.console_offset, LiveEvent.objects.count())

    # The same poll delivered again (a redelivery, or a second chain) finds its turn taken.
    release = poll(release, number=0)
    assert (release.console, release.console_offset, LiveEvent.objects.count()) == seen
    assert release.build_polls == 1

    for _look in range(100):
        if release.status != ReleaseStatus.BUILDING:
            break
        time.sleep(0.2)
        release = poll(release)
    assert release.status == ReleaseStatus.FAILED
    assert "ended FAILURE" in release.error and "second line" in release.error  # the console tail
    assert lines(release).count("first line") == 1 and lines(release).count("second line") == 1
    assert release.finished_at is not None
    assert AuditEvent.objects.filter(verb="release.fail", target_id=str(release.pk)).count() == 1
    # A poll that arrives after the end does nothing.
    polls = release.build_polls
    assert poll(release, number=polls).build_polls == polls


def test_a_poll_of_a_cancelled_release_does_nothing(people, jenkins_standin, jenkins):
    release = building(people, jenkins_standin, jenkins, ['echo "one"; sleep 5'])
    services.release_cancel(actor=people.developer, release_id=release.pk)
    release = poll(release)
    assert release.status == ReleaseStatus.CANCELLED and release.build_polls == 0 and release.console == ""


def test_the_build_timeout_counts_from_the_builds_start(people, jenkins_standin, jenkins, settings):
    settings.RELEASE_BUILD_TIMEOUT = 60
    release = building(people, jenkins_standin, jenkins, ['echo "slow"; sleep 30'])
    release = poll(release)
    assert release.status == ReleaseStatus.BUILDING  # 60 s have not passed since the build started

    Release.objects.filter(pk=release.pk).update(build_started_at=timezone.now() - timedelta(seconds=61))
    release = poll(release)
    assert release.status == ReleaseStatus.FAILED
    assert "longer than 60 s and was stopped" in release.error
    info = until("Jenkins to stop the build", lambda: (i := jenkins.build_info("orders", 1)).result and i)
    assert info.result == "ABORTED"
