"""Workflow notices at the transitions that change a running environment (local control plane): a test
release deployed waits for the testers, a rollback tells the releaser and the owner, an applied
configuration change tells its author."""

import pytest
from django.conf import settings
from django.utils import timezone

from alerting.choices import NoticeMethod
from alerting.models import Channel, Delivery, NotificationPreference
from alerting.services.routing import PERSONAL_EMAIL_CHANNEL
from clusters.choices import ConfigChangeStatus
from clusters.models import ConfigChange
from deploys import services
from deploys.choices import DeploymentOutcome, ReleaseStatus
from deploys.models import DeploymentRecord, Release
from opsportal.notices import NoticeKind
from tests.helpers.environments import provision, run_change

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture
def env(people, local_clusters):
    return provision(people, local_clusters["test"])


def _release(people, digit: str, status: str) -> Release:
    return Release.objects.create(
        project=people.project,
        environment="test",
        created_by=people.developer,
        branch="main",
        version=f"20261130-10000{digit}-u1",
        status=status,
        image_repository="registry.local/orders",
        image_digest="sha256:" + digit * 64,
    )


def test_a_deployed_test_release_asks_the_testers_and_its_rollback_tells_releaser_and_owner(
    client, people, env, django_capture_on_commit_callbacks
):
    channel = Channel.objects.create(project=people.project, name="orders-robot", kind="dingtalk")
    earlier = _release(people, "1", ReleaseStatus.DEPLOYED)
    good = DeploymentRecord.objects.create(
        project=people.project,
        environment="test",
        kind="release",
        release=earlier,
        image=earlier.image,
        outcome=DeploymentOutcome.SUCCEEDED,
        actor=people.developer,
        finished_at=timezone.now(),
    )
    release = _release(people, "2", ReleaseStatus.BUILT)
    with django_capture_on_commit_callbacks(execute=True):
        services.release_deploy(release_id=release.pk, run_token=str(release.run_token))
    release.refresh_from_db()
    assert release.status == ReleaseStatus.DEPLOYED, release.error
    waiting = Delivery.objects.get(cause=NoticeKind.RELEASE_AWAITING_CONFIRMATION)
    assert waiting.channel == channel
    assert "@tess-tester" in waiting.text and "@dora-dev" not in waiting.text  # not the releaser's turn
    client.force_login(people.tester)
    assert client.get(waiting.link[len(settings.PORTAL_PUBLIC_URL) :]).status_code == 200

    with django_capture_on_commit_callbacks(execute=False):
        record = services.release_rollback(
            actor=people.owner, project=people.project, environment="test", record_id=good.pk
        )
    with django_capture_on_commit_callbacks(execute=True):
        services.rollback_deploy(record_id=record.pk)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ROLLED_BACK
    rolled = Delivery.objects.get(cause=NoticeKind.RELEASE_ROLLED_BACK)
    assert rolled.channel == channel and release.version in rolled.title
    assert "@dora-dev" in rolled.text and "@oscar-owner" in rolled.text
    assert earlier.image in rolled.text  # the reason names the image put back
    assert Delivery.objects.count() == 2


def test_an_applied_config_change_emails_its_author_by_default(
    client, people, env, django_capture_on_commit_callbacks
):
    Channel.objects.create(project=people.project, name="orders-robot", kind="dingtalk")
    people.ops.email = "olivia@example.com"
    people.ops.save()
    client.force_login(people.ops)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.put(
            "/api/projects/orders/environments/test/config/",
            {"request": {"hpa_max": 6}},
            content_type="application/json",
        )
    assert response.status_code == 202, response.content
    with django_capture_on_commit_callbacks(execute=True):
        change = run_change(ConfigChange.objects.get())
    assert change.status == ConfigChangeStatus.APPLIED, change.error
    mail = Delivery.objects.get()  # config-applied defaults to email: good news, no hurry
    assert mail.channel.name == PERSONAL_EMAIL_CHANNEL and mail.cause == NoticeKind.CONFIG_APPLIED
    assert mail.mentions == {"emails": ["olivia@example.com"]}
    assert f"#{change.pk}" in mail.title and mail.link.endswith(f"/config/changes/{change.pk}/")

    NotificationPreference.objects.create(
        user=people.ops, kind=NoticeKind.CONFIG_APPLIED, method=NoticeMethod.CHAT
    )
    with django_capture_on_commit_callbacks(execute=False):
        client.put(
            "/api/projects/orders/environments/test/config/",
            {"request": {"hpa_max": 7}},
            content_type="application/json",
        )
    with django_capture_on_commit_callbacks(execute=True):
        second = run_change(ConfigChange.objects.filter(status=ConfigChangeStatus.QUEUED).get())
    assert second.status == ConfigChangeStatus.APPLIED, second.error
    chat = Delivery.objects.get(channel__name="orders-robot")
    assert "@olivia-ops" in chat.text and chat.cause == NoticeKind.CONFIG_APPLIED
