"""Workflow notices: emitted by the real services at their transitions, routed to the right people by
their preferences (an @-mention in the project's robot channel, an email, or nothing). The transitions
that need a cluster (a release deployed or rolled back, a change applied) are in test_notices_kube.py."""

import pytest
from django.conf import settings

from alerting.choices import ChannelKind, NoticeMethod
from alerting.models import Channel, Delivery, NotificationPreference
from alerting.services.channels import channel_create
from alerting.services.delivery import delivery_send
from alerting.services.routing import PERSONAL_EMAIL_CHANNEL
from clusters.choices import ConfigChangeStatus
from clusters.models import ConfigChange, ProjectEnvironment
from clusters.services.config_changes import config_change_fail
from deploys.choices import ReleaseStatus
from deploys.models import Release
from deploys.services import releases as release_services
from deploys.services import tickets
from opsportal.notices import NoticeKind
from projects.models import UserProfile
from tests.fixtures.clusters import VALID_REQUEST
from tests.fixtures.people import make_user

pytestmark = pytest.mark.django_db


def robot(project, name: str, kind: str = "dingtalk", **config) -> Channel:
    return Channel.objects.create(project=project, name=name, kind=kind, config=config)


def prefer(user, kind: str, method: str) -> None:
    NotificationPreference.objects.update_or_create(user=user, kind=kind, defaults={"method": method})


def path_of(link: str) -> str:
    assert link.startswith(settings.PORTAL_PUBLIC_URL + "/"), link
    return link[len(settings.PORTAL_PUBLIC_URL) :]


def test_ticket_submitted_produces_one_delivery_for_the_ops_channel_with_a_working_link(
    client, people, django_capture_on_commit_callbacks
):
    ops_robot = robot(None, "ops-robot")
    robot(people.project, "orders-robot")  # the project's own channel is not where tickets go
    UserProfile.objects.create(user=people.ops, mobile="13900000001")
    with django_capture_on_commit_callbacks(execute=True):
        ticket = tickets.ticket_create(
            actor=people.developer,
            project=people.project,
            environment="test",
            request=dict(VALID_REQUEST),
            submit=True,
        )
    delivery = Delivery.objects.get()
    assert delivery.channel == ops_robot and delivery.cause == NoticeKind.TICKET_SUBMITTED
    assert f"#{ticket.pk}" in delivery.title and "orders" in delivery.title
    assert delivery.mentions == {"mobiles": ["13900000001"]}
    assert "@olivia-ops" in delivery.text and delivery.link in delivery.text
    client.force_login(people.ops)
    page = client.get(path_of(delivery.link))
    assert page.status_code == 200 and f"#{ticket.pk}" in page.content.decode()


def test_a_submitted_ticket_reaches_the_ops_robot_standin_once_with_a_working_link(
    client, people, settings, chatrobots_standin, django_capture_on_commit_callbacks
):
    settings.DINGTALK_WEBHOOK_BASE = chatrobots_standin.url
    chatrobots_standin.add_dingtalk_robot(
        "ops-robot-token", secret="SECops0123456789", keywords=["OpsPortal"]
    )
    channel_create(
        actor=people.ops,
        project=None,
        name="ops-dingtalk",
        kind=ChannelKind.DINGTALK,
        access_token="ops-robot-token",
        signing_secret="SECops0123456789",
        keyword="OpsPortal",
    )
    with django_capture_on_commit_callbacks(execute=True):
        ticket = tickets.ticket_create(
            actor=people.developer,
            project=people.project,
            environment="test",
            request=dict(VALID_REQUEST),
            submit=True,
        )
    delivery = Delivery.objects.get()
    delivery_send(delivery_id=delivery.pk)  # what the worker does with the message queued on commit
    delivery_send(delivery_id=delivery.pk)  # a duplicate task message sends nothing more
    [message] = chatrobots_standin.messages("ops-robot-token")  # signed and with the keyword, or refused
    assert f"#{ticket.pk}" in message.title and message.content.count(delivery.link) == 1
    client.force_login(people.ops)
    page = client.get(path_of(delivery.link))
    assert page.status_code == 200 and f"#{ticket.pk}" in page.content.decode()


def test_a_draft_submitted_later_notifies_once_and_ops_who_chose_email_get_mail(
    people, django_capture_on_commit_callbacks
):
    ops_robot = robot(None, "ops-robot")
    second = make_user("oleg-ops", "ops")
    second.email = "oleg@example.com"
    second.save()
    prefer(second, NoticeKind.TICKET_SUBMITTED, NoticeMethod.EMAIL)
    prefer(people.ops, NoticeKind.TICKET_SUBMITTED, NoticeMethod.OFF)
    with django_capture_on_commit_callbacks(execute=True):
        draft = tickets.ticket_create(
            actor=people.developer, project=people.project, environment="test", request=dict(VALID_REQUEST)
        )
    assert not Delivery.objects.exists()  # a draft is nobody's turn yet
    with django_capture_on_commit_callbacks(execute=True):
        tickets.ticket_submit(actor=people.developer, ticket_id=draft.pk)
        tickets.ticket_submit(actor=people.developer, ticket_id=draft.pk)  # already submitted: no-op
    chat = Delivery.objects.get(channel=ops_robot)
    assert chat.mentions == {} and "@olivia-ops" not in chat.text  # olivia turned it off
    mail = Delivery.objects.get(channel__name=PERSONAL_EMAIL_CHANNEL)
    assert mail.channel.kind == "email" and mail.channel.project is None
    assert mail.mentions == {"emails": ["oleg@example.com"]} and mail.link in mail.text
    assert Delivery.objects.count() == 2


def _release(people, *, status=ReleaseStatus.TAGGING, environment="test") -> Release:
    return Release.objects.create(
        project=people.project,
        environment=environment,
        created_by=people.developer,
        branch="main",
        version="20261130-101010-u3",
        status=status,
    )


def test_a_failed_release_tells_its_releaser_and_the_owner(people, django_capture_on_commit_callbacks):
    channel = robot(people.project, "orders-robot")
    UserProfile.objects.create(user=people.developer, mobile="13900000002")
    UserProfile.objects.create(user=people.owner, mobile="13900000003")
    release = _release(people)
    with django_capture_on_commit_callbacks(execute=True):
        release_services.release_fail(
            release_id=release.pk, run_token=str(release.run_token), error="Jenkins build #7 ended FAILURE."
        )
    release.refresh_from_db()
    assert release.status == ReleaseStatus.FAILED
    delivery = Delivery.objects.get()
    assert delivery.channel == channel and delivery.cause == NoticeKind.RELEASE_FAILED
    assert delivery.mentions == {"mobiles": ["13900000002", "13900000003"]}
    assert "@dora-dev" in delivery.text and "@oscar-owner" in delivery.text
    assert "20261130-101010-u3" in delivery.title and "Jenkins build #7" in delivery.text
    assert path_of(delivery.link) == f"/projects/orders/releases/{release.pk}/"


def test_preferences_decide_chat_email_or_nothing_per_person(people, django_capture_on_commit_callbacks):
    channel = robot(people.project, "orders-robot")
    robot(people.project, "orders-mail", "email", recipients=["team@example.com"])
    people.owner.email = "oscar@example.com"
    people.owner.save()
    prefer(people.owner, NoticeKind.RELEASE_FAILED, NoticeMethod.EMAIL)
    release = _release(people)
    with django_capture_on_commit_callbacks(execute=True):
        release_services.release_fail(release_id=release.pk, run_token=str(release.run_token), error="boom")
    chat = Delivery.objects.get(channel=channel)
    assert "@dora-dev" in chat.text and "@oscar-owner" not in chat.text
    mail = Delivery.objects.get(channel__name=PERSONAL_EMAIL_CHANNEL)
    assert mail.mentions == {"emails": ["oscar@example.com"]}
    assert Delivery.objects.count() == 2  # the project's email channel is for alerts, not for people

    Delivery.objects.all().delete()
    prefer(people.owner, NoticeKind.RELEASE_FAILED, NoticeMethod.OFF)
    prefer(people.developer, NoticeKind.RELEASE_FAILED, NoticeMethod.OFF)
    second = _release(people)
    with django_capture_on_commit_callbacks(execute=True):
        release_services.release_fail(release_id=second.pk, run_token=str(second.run_token), error="boom")
    assert not Delivery.objects.exists()

    # Email wanted but no address: the chat mention still reaches them.
    people.owner.email = ""
    people.owner.save()
    prefer(people.owner, NoticeKind.RELEASE_FAILED, NoticeMethod.EMAIL)
    third = _release(people)
    with django_capture_on_commit_callbacks(execute=True):
        release_services.release_fail(release_id=third.pk, run_token=str(third.run_token), error="boom")
    assert "@oscar-owner" in Delivery.objects.get(channel=channel).text


def test_flagged_channels_carry_workflow_notices_and_no_robot_means_email(
    people, django_capture_on_commit_callbacks
):
    robot(people.project, "alerts-only")
    flagged = robot(people.project, "team-chat", "wecom", workflow_notices=True)
    release = _release(people)
    with django_capture_on_commit_callbacks(execute=True):
        release_services.release_fail(release_id=release.pk, run_token=str(release.run_token), error="x")
    assert [d.channel for d in Delivery.objects.all()] == [flagged]

    Channel.objects.filter(project=people.project).delete()
    people.developer.email = "dora@example.com"
    people.developer.save()
    second = _release(people)
    with django_capture_on_commit_callbacks(execute=True):
        release_services.release_fail(release_id=second.pk, run_token=str(second.run_token), error="x")
    mail = Delivery.objects.get(channel__name=PERSONAL_EMAIL_CHANNEL)
    assert mail.mentions == {"emails": ["dora@example.com"]}  # the owner has no address: nothing to send


def test_a_failed_config_change_tells_its_author(people, django_capture_on_commit_callbacks):
    channel = robot(people.project, "orders-robot")
    env = ProjectEnvironment.objects.create(
        project=people.project,
        environment="prod",
        namespace="orders-prod",
        spec={"request": dict(VALID_REQUEST), "overrides": {}},
    )
    change = ConfigChange.objects.create(environment=env, actor=people.ops, request={})
    with django_capture_on_commit_callbacks(execute=True):
        config_change_fail(change_id=change.pk, run_token=str(change.run_token), error="quota exceeded")
    change.refresh_from_db()
    assert change.status == ConfigChangeStatus.FAILED
    delivery = Delivery.objects.get()
    assert delivery.channel == channel and delivery.cause == NoticeKind.CONFIG_FAILED
    assert "@olivia-ops" in delivery.text and "quota exceeded" in delivery.text
    # Production: Chinese by default.
    assert f"配置变更 #{change.pk}" in delivery.title
    assert path_of(delivery.link) == f"/projects/orders/env/prod/config/changes/{change.pk}/"
