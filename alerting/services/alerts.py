"""Alerts from Alertmanager (stored deduplicated, with their firing → resolved history) and what people
do about them from the portal: acknowledge, and silence through Alertmanager's own API.

``alerts_receive`` is the webhook receiver's one service: it only writes rows and, on commit, sends
``alerting.signals.alert_transitioned`` for a new firing occurrence or a firing → resolved change.
Delivery to channels happens in tasks that listen to that signal, so the receiver answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from alerting.choices import AlertStatus
from alerting.models import Alert, AlertTransition
from alerting.signals import alert_transitioned
from alerting.webhook import ReceivedAlert, parse_notification
from integrations.alertmanager import AlertmanagerClient, Matcher
from integrations.errors import IntegrationError, NotFound
from observability.services import audit_record
from opsportal.errors import StateConflict
from projects.models import Project

# The labels a silence made from an alert matches on: the alert and where it fires, not its pod or value.
SILENCE_LABELS = ("alertname", "project", "env", "service")


@dataclass
class ReceiveResult:
    created: list[int] = field(default_factory=list)
    transitions: list[tuple[int, str]] = field(default_factory=list)


def _announce(alert_id: int, transition: str) -> None:
    transaction.on_commit(
        lambda: alert_transitioned.send(sender=Alert, alert_id=alert_id, transition=transition)
    )


def _locked_or_created(received: ReceivedAlert, project: Project | None) -> tuple[Alert, bool]:
    key = {"fingerprint": received.fingerprint, "starts_at": received.starts_at}
    alert = Alert.objects.select_for_update().filter(**key).first()
    if alert is not None:
        return alert, False
    try:
        with transaction.atomic():  # a savepoint: a concurrent post of the same occurrence may win
            return (
                Alert.objects.create(
                    **key,
                    ends_at=received.ends_at,
                    status=received.status,
                    alertname=received.alertname,
                    severity=received.severity,
                    project=project,
                    environment=received.environment,
                    labels=received.labels,
                    annotations=received.annotations,
                    generator_url=received.generator_url,
                ),
                True,
            )
    except IntegrityError:
        return Alert.objects.select_for_update().get(**key), False


def _receive_one(received: ReceivedAlert, projects: dict[str, Project], result: ReceiveResult) -> None:
    alert, created = _locked_or_created(received, projects.get(received.project_name))
    if created:
        result.created.append(alert.pk)
        AlertTransition.objects.create(alert=alert, status=AlertStatus.FIRING, at=received.starts_at)
        if received.status == AlertStatus.FIRING:
            result.transitions.append((alert.pk, AlertStatus.FIRING))
            _announce(alert.pk, AlertStatus.FIRING)
        else:
            # First heard of when it had already ended (the portal was down while it fired): the history
            # is complete, but nobody is told of something that is over.
            AlertTransition.objects.create(alert=alert, status=AlertStatus.RESOLVED, at=received.ends_at)
            AlertTransition.objects.filter(alert=alert).update(routed_at=timezone.now())
        return
    if alert.status == AlertStatus.FIRING and received.status == AlertStatus.RESOLVED:
        alert.status = AlertStatus.RESOLVED
        alert.ends_at = received.ends_at
        alert.annotations = received.annotations
        alert.save(update_fields=["status", "ends_at", "annotations", "updated_at"])
        AlertTransition.objects.create(alert=alert, status=AlertStatus.RESOLVED, at=received.ends_at)
        result.transitions.append((alert.pk, AlertStatus.RESOLVED))
        _announce(alert.pk, AlertStatus.RESOLVED)
    elif alert.status == received.status == AlertStatus.FIRING and alert.annotations != received.annotations:
        # A repeat of the same occurrence: the value in the annotations may have moved; nothing to tell.
        alert.annotations = received.annotations
        alert.save(update_fields=["annotations", "updated_at"])
    # A late "firing" retry after "resolved" (same startsAt) never reopens the occurrence.


def alerts_receive(*, payload) -> ReceiveResult:
    """Store one Alertmanager notification. ValidationError (by field) when the payload is malformed."""
    received = parse_notification(payload)
    names = {r.project_name for r in received if r.project_name}
    projects = {p.name: p for p in Project.objects.filter(name__in=names)}
    result = ReceiveResult()
    with transaction.atomic():
        # One order for the row locks, so two notifications of overlapping groups cannot deadlock.
        for item in sorted(received, key=lambda r: (r.fingerprint, r.starts_at)):
            _receive_one(item, projects, result)
    return result


# --- acknowledgements ----------------------------------------------------------------------------


def alert_acknowledge(*, actor, alert: Alert, remote_addr: str | None = None) -> Alert:
    with transaction.atomic():
        alert = Alert.objects.select_for_update().get(pk=alert.pk)
        if alert.acknowledged_at is not None:
            raise StateConflict(_("This alert is already acknowledged."))
        if alert.status != AlertStatus.FIRING:
            raise StateConflict(_("Only a firing alert can be acknowledged."))
        alert.acknowledged_by = actor
        alert.acknowledged_at = timezone.now()
        alert.save(update_fields=["acknowledged_by", "acknowledged_at", "updated_at"])
        audit_record(
            actor=actor,
            verb="alert.acknowledge",
            target=alert,
            project=alert.project,
            changes={"alertname": alert.alertname, "fingerprint": alert.fingerprint},
            remote_addr=remote_addr,
        )
    return alert


# --- silences (kept by Alertmanager; the portal keeps the audit trail) ---------------------------


def _client() -> AlertmanagerClient:
    client = AlertmanagerClient.from_settings()
    if client is None:
        raise IntegrationError(_("No Alertmanager is configured (ALERTMANAGER_URL), so silences are off."))
    return client


def silence_matchers(alert: Alert) -> list[Matcher]:
    return [Matcher(name, alert.labels[name]) for name in SILENCE_LABELS if alert.labels.get(name)]


def silence_create(
    *, actor, alert: Alert, minutes: int, comment: str, remote_addr: str | None = None
) -> dict:
    """Silence ``alert`` (its alertname, project, env and service) for ``minutes`` in Alertmanager.
    Returns the silence as Alertmanager answers it."""
    comment = (comment or "").strip()
    errors: dict[str, list[str]] = {}
    if not comment:
        errors["comment"] = [_("Say why the alert is silenced.")]
    if not 1 <= minutes <= settings.ALERT_SILENCE_MAX_MINUTES:
        errors["minutes"] = [
            _("Between 1 and %(max)d minutes.") % {"max": settings.ALERT_SILENCE_MAX_MINUTES}
        ]
    if errors:
        raise ValidationError(errors)
    client = _client()
    starts_at = timezone.now()
    ends_at = starts_at + timedelta(minutes=minutes)
    matchers = silence_matchers(alert)
    silence_id = client.silence_create(
        matchers=matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        created_by=actor.get_username(),
        comment=comment,
    )
    with transaction.atomic():
        audit_record(
            actor=actor,
            verb="alert.silence",
            target=alert,
            project=alert.project,
            changes={
                "silence_id": silence_id,
                "matchers": {m.name: m.value for m in matchers},
                "minutes": minutes,
                "ends_at": ends_at.isoformat(),
                "comment": comment,
            },
            remote_addr=remote_addr,
        )
    return client.silence(silence_id)


def _belongs_to(silence: dict, project: Project) -> bool:
    return any(
        m.get("name") == "project"
        and m.get("value") == project.name
        and not m.get("isRegex")
        and m.get("isEqual", True)
        for m in silence.get("matchers", [])
    )


def silences_for_project(*, project: Project) -> list[dict]:
    """The project's active and pending silences (those matching its ``project`` label), soonest end first."""
    silences = _client().silences(filters=[f'project="{project.name}"'])
    live = [s for s in silences if s.get("status", {}).get("state") != "expired" and _belongs_to(s, project)]
    return sorted(live, key=lambda s: s.get("endsAt", ""))


def silence_expire(*, actor, project: Project, silence_id: str, remote_addr: str | None = None) -> None:
    client = _client()
    try:
        silence = client.silence(silence_id)
    except NotFound:
        silence = None
    if silence is None or not _belongs_to(silence, project):
        raise Http404(_("No such silence on this project."))
    if silence.get("status", {}).get("state") == "expired":
        raise StateConflict(_("This silence has already expired."))
    client.silence_expire(silence_id)
    with transaction.atomic():
        audit_record(
            actor=actor,
            verb="alert.silence_expire",
            target=project,
            project=project,
            changes={"silence_id": silence_id, "comment": silence.get("comment", "")},
            remote_addr=remote_addr,
        )
