"""Policies and notification preferences through the API and the pages: who may read and change them,
validation with clear messages, and the audit trail."""

import pytest
from django.urls import reverse

from alerting.models import Channel, NotificationPreference, Policy
from observability.models import AuditEvent
from projects.models import UserProfile

pytestmark = pytest.mark.django_db

API = "/api/projects/orders/alert-policies/"


@pytest.fixture
def channels(people):
    return {
        name: Channel.objects.create(project=people.project, name=name, kind=kind)
        for name, kind in [("prod-robot", "dingtalk"), ("prod-mail", "email")]
    }


def test_owner_creates_changes_and_deletes_a_policy_audited(client, people, channels):
    client.force_login(people.owner)
    created = client.post(
        API,
        {
            "environment": "prod",
            "severity": "critical",
            "channels": ["prod-robot", "prod-mail"],
            "quiet_start": "22:00",
            "quiet_end": "07:00",
            "mention": "on_call",
            "on_call": people.developer.username,
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["channels"] == ["prod-mail", "prod-robot"] and body["on_call"] == "dora-dev"
    assert body["repeat_interval_minutes"] == 240 and body["send_resolved"] is True
    assert body["quiet_start"] == "22:00:00" and body["mention"] == "on_call"
    event = AuditEvent.objects.get(verb="alert_policy.create")
    assert event.project == people.project and event.changes["channels"] == ["prod-mail", "prod-robot"]

    url = f"{API}{body['id']}/"
    changed = client.patch(
        url, {"repeat_interval_minutes": 30, "channels": ["prod-robot"]}, content_type="application/json"
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["channels"] == ["prod-robot"] and changed.json()["quiet_end"] == "07:00:00"
    update = AuditEvent.objects.get(verb="alert_policy.update")
    assert update.changes["repeat_interval_minutes"] == [240, 30]
    assert update.changes["channels"] == [["prod-mail", "prod-robot"], ["prod-robot"]]

    client.force_login(people.viewer)
    assert client.get(API).json()[0]["id"] == body["id"]  # members read
    assert client.get(url).status_code == 200
    assert client.patch(url, {"send_resolved": False}, content_type="application/json").status_code == 403
    assert client.delete(url).status_code == 403
    client.force_login(people.outsider)
    assert client.get(API).status_code == 404 and client.get(url).status_code == 404

    client.force_login(people.ops)
    assert client.delete(url).status_code == 204
    assert not Policy.objects.exists() and AuditEvent.objects.filter(verb="alert_policy.delete").exists()


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"channels": ["nope"]}, "channels", "No channel of this project is named: nope."),
        ({"channels": ["ops-robot"]}, "channels", "No channel of this project is named: ops-robot."),
        ({"quiet_start": "22:00"}, "quiet_end", "Give both ends of the quiet hours, or neither."),
        (
            {"severity": "warning", "mention": "owner"},
            "mention",
            "Only a critical policy @-mentions someone.",
        ),
        ({"mention": "on_call"}, "on_call", "Choose the on-call person to mention."),
        (
            {"on_call": "otto-outsider"},
            "on_call",
            "The on-call person must be a member of the project or ops.",
        ),
        ({"repeat_interval_minutes": 0}, "repeat_interval_minutes", "greater than or equal to 1"),
        ({"environment": "staging"}, "environment", "not a valid choice"),
    ],
)
def test_invalid_policies_are_refused_with_a_message(client, people, channels, data, field, message):
    Channel.objects.create(project=None, name="ops-robot", kind="dingtalk")
    client.force_login(people.owner)
    response = client.post(
        API, {"environment": "prod", "severity": "critical", **data}, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert any(message in text for text in response.json()["errors"][field]), response.json()
    assert (
        not Policy.objects.exists()
        and not AuditEvent.objects.filter(verb__startswith="alert_policy").exists()
    )


def test_a_second_policy_for_the_same_environment_and_severity_is_refused(client, people, channels):
    client.force_login(people.owner)
    first = {"environment": "test", "severity": "info"}
    assert client.post(API, first, content_type="application/json").status_code == 201
    again = client.post(API, first, content_type="application/json")
    assert again.status_code == 400
    assert "test · info already has a policy" in again.json()["errors"]["severity"][0]


def test_policy_pages_list_add_edit_and_delete(client, people, channels):
    client.force_login(people.developer)
    page = client.get(reverse("alerting:policy-list", args=["orders"]))
    assert page.status_code == 200 and 'id="policy-form"' not in page.content.decode()
    assert client.post(reverse("alerting:policy-list", args=["orders"]), {}).status_code == 403

    client.force_login(people.owner)
    form = {
        "environment": "prod",
        "severity": "warning",
        "channels": [channels["prod-robot"].pk],
        "repeat_interval_minutes": "60",
        "quiet_start": "23:00",
        "quiet_end": "06:30",
        "send_resolved": "on",
        "mention": "none",
        "on_call": "",
    }
    added = client.post(reverse("alerting:policy-list", args=["orders"]), form)
    assert added.status_code == 302
    policy = Policy.objects.get()
    assert list(policy.channels.all()) == [channels["prod-robot"]] and policy.repeat_interval_minutes == 60
    bad = client.post(
        reverse("alerting:policy-list", args=["orders"]), {**form, "severity": "info", "mention": "owner"}
    )
    assert bad.status_code == 400 and "Only a critical policy @-mentions someone." in bad.content.decode()

    edit = reverse("alerting:policy-edit", args=["orders", policy.pk])
    assert client.get(edit).status_code == 200
    saved = client.post(edit, {**form, "send_resolved": "", "channels": [channels["prod-mail"].pk]})
    assert saved.status_code == 302
    policy.refresh_from_db()
    assert policy.send_resolved is False and list(policy.channels.all()) == [channels["prod-mail"]]
    listing = client.get(reverse("alerting:policy-list", args=["orders"])).content.decode()
    assert "prod-mail" in listing and "23:00–06:30" in listing
    client.post("/language/", {"language": "zh-hans"})
    chinese = client.get(reverse("alerting:policy-list", args=["orders"])).content.decode()
    assert "告警策略" in chinese and "60 分钟" in chinese and "免打扰时段" in chinese

    client.force_login(people.viewer)
    assert client.get(edit).status_code == 403
    client.force_login(people.owner)
    assert client.post(reverse("alerting:policy-delete", args=["orders", policy.pk])).status_code == 302
    assert not Policy.objects.exists()


def test_preferences_through_the_api_and_the_page(client, people):
    client.force_login(people.tester)
    url = "/api/me/notifications/"
    current = client.get(url).json()
    assert current["mobile"] == "" and current["methods"]["release-awaiting-confirmation"] == "chat"
    assert current["methods"]["config-applied"] == "email"
    changed = client.patch(
        url,
        {"mobile": "+8613900000009", "methods": {"release-awaiting-confirmation": "email"}},
        content_type="application/json",
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["methods"]["release-awaiting-confirmation"] == "email"
    assert UserProfile.objects.get(user=people.tester).mobile == "+8613900000009"
    event = AuditEvent.objects.get(verb="notification_preferences.update")
    assert event.changes == {"release-awaiting-confirmation": ["chat", "email"], "mobile": "changed"}
    assert "13900000009" not in str(event.changes)  # a phone number stays out of the audit log

    bad = client.patch(
        url, {"mobile": "call me", "methods": {"nope": "chat"}}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"mobile", "nope"}
    wrong_method = client.patch(
        url, {"methods": {"release-failed": "pager"}}, content_type="application/json"
    )
    assert wrong_method.status_code == 400 and "release-failed" in wrong_method.json()["errors"]["methods"]

    page_url = reverse("alerting:notification-preferences")
    page = client.get(page_url)
    assert page.status_code == 200 and "+8613900000009" in page.content.decode()
    form = {f"kind_{kind}": "off" for kind in current["methods"]}
    saved = client.post(page_url, {**form, "mobile": "13900000010"})
    assert saved.status_code == 302
    assert set(
        NotificationPreference.objects.filter(user=people.tester).values_list("method", flat=True)
    ) == {"off"}
    assert UserProfile.objects.get(user=people.tester).mobile == "13900000010"
    assert client.post(page_url, {**form, "mobile": "x"}).status_code == 400
