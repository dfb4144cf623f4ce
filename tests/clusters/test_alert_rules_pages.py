"""The alert rules page and API of an environment: members read, owners and ops change a rule (audited,
validated with a message), outsiders do not learn the environment exists."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from clusters.models import AlertRuleFile, AlertRuleSetting
from observability.models import AuditEvent
from observability.monitoring.alert_rules import ALERTNAMES

pytestmark = pytest.mark.django_db

PAGE = "/projects/orders/env/test/alert-rules/"
API = "/api/projects/orders/environments/test/alert-rules/"


@pytest.fixture
def environment(recorded_environment):
    return recorded_environment


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_members_read_the_page_owners_get_the_forms(client, people, environment):
    client.force_login(people.viewer)
    page = client.get(PAGE)
    assert page.status_code == 200
    text = page.content.decode()
    for name in ALERTNAMES:
        assert f'id="rule-{name}"' in text
    assert 'id="rules-read-only"' in text and "hx-post" not in text and "disabled" in text
    client.force_login(people.owner)
    text = client.get(PAGE).content.decode()
    assert 'id="rules-read-only"' not in text and text.count("hx-post") == len(ALERTNAMES)
    client.force_login(people.outsider)
    assert client.get(PAGE).status_code == 404
    # The environment page links to it.
    client.force_login(people.viewer)
    assert PAGE in client.get("/projects/orders/env/test/").content.decode()


def test_the_owner_saves_a_rule_with_htmx(client, people, environment):
    client.force_login(people.owner)
    form = {
        "ErrorRatioHigh-enabled": "on",
        "ErrorRatioHigh-threshold": "0.2",
        "ErrorRatioHigh-for_seconds": "60",
        "ErrorRatioHigh-severity": "warning",
    }
    answer = client.post(f"{PAGE}ErrorRatioHigh/", form, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    assert 'data-saved="true"' in answer.content.decode()
    saved = AlertRuleSetting.objects.get(environment=environment, rule="ErrorRatioHigh")
    assert (saved.enabled, saved.threshold, saved.for_seconds, saved.severity) == (True, 0.2, 60, "warning")
    assert saved.updated_by == people.owner
    event = AuditEvent.objects.get(verb="alert_rule.update")
    assert event.changes["threshold"] == [0.05, 0.2] and event.changes["severity"] == ["critical", "warning"]

    # Unchecked is off; the page without HTMX goes back to the list.
    answer = client.post(f"{PAGE}ErrorRatioHigh/", {**form, "ErrorRatioHigh-enabled": ""})
    assert answer.status_code == 302 and answer["Location"] == PAGE
    assert not AlertRuleSetting.objects.get(rule="ErrorRatioHigh").enabled


def test_a_threshold_out_of_range_is_shown_on_the_row_and_not_saved(client, people, environment):
    client.force_login(people.ops)
    form = {
        "TargetDown-enabled": "on",
        "TargetDown-threshold": "1.5",
        "TargetDown-for_seconds": "60",
        "TargetDown-severity": "critical",
    }
    answer = client.post(f"{PAGE}TargetDown/", form, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200  # HTMX swaps only 2xx: the row comes back with its error
    text = answer.content.decode()
    assert 'data-error="threshold"' in text and "between 0 and 0.99" in text and "data-saved" not in text
    answer = client.post(f"{PAGE}TargetDown/", form)
    assert answer.status_code == 400 and "between 0 and 0.99" in answer.content.decode()
    assert not AlertRuleSetting.objects.exists()
    assert not AuditEvent.objects.filter(verb="alert_rule.update").exists()


def test_only_owners_and_ops_post_and_outsiders_learn_nothing(client, people, environment):
    form = {"PodsNotReady-threshold": "2", "PodsNotReady-for_seconds": "60", "PodsNotReady-severity": "info"}
    for user, status in ((people.developer, 403), (people.viewer, 403), (people.outsider, 404)):
        client.force_login(user)
        assert client.post(f"{PAGE}PodsNotReady/", form).status_code == status
    client.force_login(people.owner)
    assert client.post(f"{PAGE}NoSuchRule/", form).status_code == 404
    assert not AlertRuleSetting.objects.exists()


def test_the_api_lists_the_rules_with_defaults(people, environment):
    answer = api_as(people.tester).get(API)
    assert answer.status_code == 200
    rules = answer.json()
    assert [r["rule"] for r in rules] == list(ALERTNAMES)
    error_ratio = rules[0]
    assert error_ratio["threshold"] == 0.05 and error_ratio["for_seconds"] == 300
    assert error_ratio["severity"] == "critical" and error_ratio["enabled"] is True
    assert error_ratio["default"] == {
        "enabled": True,
        "threshold": 0.05,
        "for_seconds": 300,
        "severity": "critical",
    }
    assert error_ratio["minimum"] == 0 and error_ratio["maximum"] == 1 and error_ratio["customized"] is False
    assert api_as(people.outsider).get(API).status_code == 404
    assert api_as(people.viewer).get(f"{API}HPAAtMaximum/").json()["for_seconds"] == 900
    assert api_as(people.viewer).get(f"{API}Nope/").status_code == 404


def test_the_api_patches_one_rule(people, environment):
    answer = api_as(people.owner).patch(
        f"{API}LatencyP95High/", {"threshold": 0.5, "for_seconds": 30}, format="json"
    )
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["threshold"] == 0.5 and body["for_seconds"] == 30 and body["customized"] is True
    assert body["severity"] == "warning"  # not sent: kept
    assert api_as(people.viewer).get(API).json()[1]["threshold"] == 0.5
    assert AuditEvent.objects.get(verb="alert_rule.update").actor == people.owner


def test_the_api_refuses_bad_values_in_the_one_error_shape(people, environment):
    client = api_as(people.ops)
    for body, field in (
        ({"threshold": 2}, "threshold"),
        ({"severity": "page"}, "severity"),
        ({"for_seconds": -5}, "for_seconds"),
        ({"threshold": "lots"}, "threshold"),
    ):
        answer = client.patch(f"{API}ErrorRatioHigh/", body, format="json")
        assert answer.status_code == 400, (body, answer.content)
        error = answer.json()
        assert set(error) == {"detail", "errors"} and field in error["errors"], error
    assert "between 0 and 1" in str(
        client.patch(f"{API}ErrorRatioHigh/", {"threshold": 2}, format="json").json()
    )
    assert client.patch(f"{API}Nope/", {"threshold": 1}, format="json").status_code == 404
    assert (
        api_as(people.developer).patch(f"{API}ErrorRatioHigh/", {"threshold": 0.1}, format="json").status_code
        == 403
    )
    assert (
        api_as(people.outsider).patch(f"{API}ErrorRatioHigh/", {"threshold": 0.1}, format="json").status_code
        == 404
    )
    assert not AlertRuleSetting.objects.exists()


def test_the_page_and_the_environment_api_say_whether_the_file_is_loaded(
    client, settings, tmp_path, people, environment
):
    client.force_login(people.viewer)
    settings.PROMETHEUS_CONFIG_FILE = ""
    assert 'id="rules-off"' in client.get(PAGE).content.decode()
    body = api_as(people.viewer).get("/api/projects/orders/environments/test/").json()
    assert body["alert_rules"] == {"status": "off", "error": "", "applied_at": None}

    settings.PROMETHEUS_CONFIG_FILE = str(tmp_path / "prometheus.yml")
    assert 'data-status="none"' in client.get(PAGE).content.decode()
    AlertRuleFile.objects.create(
        environment=environment,
        requested_at=timezone.now(),
        attempted_at=timezone.now(),
        error="promtool check rules failed: bad",
    )
    text = client.get(PAGE).content.decode()
    assert 'data-status="failed"' in text and "promtool check rules failed: bad" in text
    body = api_as(people.viewer).get("/api/projects/orders/environments/test/").json()
    assert body["alert_rules"]["status"] == "failed" and "bad" in body["alert_rules"]["error"]
