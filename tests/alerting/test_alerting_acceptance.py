"""Issue 14's alerting acceptance on running processes: go-hello released through the whole pipeline onto
the local control plane's pod network, scraped by Debian's Prometheus through the portal's discovery,
with the portal's rule file for the environment loaded; Prometheus sends to Debian's Alertmanager, whose
webhook posts to the portal (Daphne); the portal routes by the project's policy and a real Celery worker
sends through the DingTalk robot stand-in (which checks the signature and keyword) and a real SMTP server.

A release that answers 30% of requests with 500 makes the error-ratio alert fire: exactly one DingTalk
message and one email arrive. The fixed release resolves it: exactly one resolved message each."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from alerting.choices import AlertStatus, ChannelKind, DeliveryStatus
from alerting.models import Alert, Delivery
from alerting.services.channels import channel_create
from alerting.services.routing import policy_create
from clusters.choices import PrometheusConfigStatus
from clusters.models import AlertRuleFile
from clusters.services.alert_rules import alert_rule_update
from clusters.tasks import apply_alert_rules
from opsportal.celery import app
from tests.fixtures.alertmanager import WEBHOOK_TOKEN
from tests.fixtures.pipeline import use_sandbox_pipeline
from tests.fixtures.prometheus import apply_prometheus_config
from tests.fixtures.services import running_daphne, start_celery_worker, stop
from tests.helpers.verification import (
    BAD_LINE,
    GOOD_LINE,
    PodTraffic,
    commit_change,
    onboard_go_hello,
    release_through_pipeline,
)
from tests.polling import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.kube, pytest.mark.standins]

DINGTALK_TOKEN = "acceptance-dt-token"
DINGTALK_SECRET = "SECacceptance0123456789abcdef"
KEYWORD = "OpsPortal"
RECIPIENT = "orders-oncall@example.com"
QUEUE = "opsportal-test-alerting-acceptance"
PUBLIC_URL = "http://opsportal.example.test"  # what the messages link to; never contacted


def test_a_release_with_30_percent_errors_alerts_once_by_dingtalk_and_email_and_the_fix_resolves_it(
    people,
    settings,
    local_clusters,
    demo_pipeline,
    prometheus_server,
    alertmanager_for_portal,
    chatrobots_standin,
    smtp_server,
    client,
    tmp_path,
    unconsumed_task_queue,
):
    use_sandbox_pipeline(settings, demo_pipeline)
    settings.ALERT_RULES_RATE_WINDOW = "20s"
    chatrobots_standin.add_dingtalk_robot(DINGTALK_TOKEN, secret=DINGTALK_SECRET, keywords=[KEYWORD])
    senders = {
        "DINGTALK_WEBHOOK_BASE": chatrobots_standin.url,
        "EMAIL_HOST": smtp_server.host,
        "EMAIL_PORT": str(smtp_server.port),
        "EMAIL_USE_TLS": "false",
        "TEST_CELERY_QUEUE": QUEUE,
        "PORTAL_PUBLIC_URL": PUBLIC_URL,
    }
    worker = start_celery_worker(tmp_path / "worker.log", queue=QUEUE, env=senders)
    try:
        with running_daphne(
            tmp_path, PROMETHEUS_URL=prometheus_server.url, PROMETHEUS_SCRAPE_INTERVAL="5", **senders
        ) as portal:
            alertmanager_for_portal(settings, portal_url=portal, token=WEBHOOK_TOKEN)
            state = apply_prometheus_config(settings, prometheus_server, portal_url=portal)
            assert state.status == PrometheusConfigStatus.APPLIED, state.error

            env = onboard_go_hello(people, demo_pipeline, local_clusters["test"], message_language="en")
            project = env.project

            dingtalk = channel_create(
                actor=people.owner,
                project=project,
                name="orders-dingtalk",
                kind=ChannelKind.DINGTALK,
                access_token=DINGTALK_TOKEN,
                signing_secret=DINGTALK_SECRET,
                keyword=KEYWORD,
            )
            email = channel_create(
                actor=people.owner,
                project=project,
                name="orders-mail",
                kind=ChannelKind.EMAIL,
                recipients=[RECIPIENT],
            )
            policy_create(
                actor=people.owner,
                project=project,
                environment="test",
                severity="critical",
                channels=[dingtalk, email],
                send_resolved=True,
            )
            alert_rule_update(environment=env, rule="ErrorRatioHigh", actor=people.owner, for_seconds=10)
            apply_alert_rules.apply(kwargs={"environment_id": env.pk, "reason": "test"})
            rule_file = AlertRuleFile.objects.get(environment=env)
            assert rule_file.status == "applied", rule_file.error

            traffic = PodTraffic(env, port=8080)
            try:
                release_through_pipeline(people, project)
                traffic.start()
                commit_change(demo_pipeline, project.gitlab_repository, tmp_path / "bad", GOOD_LINE, BAD_LINE)
                release_through_pipeline(people, project)

                fired = until(
                    "the error-ratio alert's DingTalk message and email",
                    lambda: (chatrobots_standin.messages(DINGTALK_TOKEN) and smtp_server.messages) or None,
                    timeout=180,
                )
                assert fired
                alert = Alert.objects.get(project=project, alertname="ErrorRatioHigh")
                assert alert.status == AlertStatus.FIRING and alert.environment == "test"
                assert alert.severity == "critical"
                time.sleep(5)  # Alertmanager's group interval passes several times: nothing more is sent
                [message] = chatrobots_standin.messages(DINGTALK_TOKEN)
                [mail] = smtp_server.messages
                path = reverse("alerting:project-alerts", kwargs={"name": project.name})
                assert PUBLIC_URL + path in message.content and KEYWORD in message.title
                assert message.content.count(PUBLIC_URL + path) == 1
                assert RECIPIENT in mail.header("To") and PUBLIC_URL + path in mail.text
                client.force_login(people.owner)
                page = client.get(path)  # the link works: the alert is on the project's alerts page
                assert page.status_code == 200 and "ErrorRatioHigh" in page.content.decode()
                assert Delivery.objects.filter(alert=alert, status=DeliveryStatus.SENT).count() == 2

                commit_change(demo_pipeline, project.gitlab_repository, tmp_path / "fix", BAD_LINE, GOOD_LINE)
                release_through_pipeline(people, project)
                until(
                    "the alert resolved after the fixed release",
                    lambda: Alert.objects.filter(pk=alert.pk, status=AlertStatus.RESOLVED).exists() or None,
                    timeout=180,
                )
                until(
                    "one resolved message on each channel",
                    lambda: (
                        len(chatrobots_standin.messages(DINGTALK_TOKEN)) == 2
                        and len(smtp_server.messages) == 2
                    )
                    or None,
                    timeout=60,
                )
                time.sleep(5)
                messages = chatrobots_standin.messages(DINGTALK_TOKEN)
                assert len(messages) == 2 and len(smtp_server.messages) == 2
                assert "resolved" in messages[1].content.lower() or "恢复" in messages[1].content
            finally:
                traffic.stop()
    finally:
        stop(worker)
        app.control.purge()
