"""The alert rules of each environment: settings changed by owners and ops, written as one Prometheus rule
file per environment and loaded by a reload.

``alert_rule_update`` validates a change (ranges, then the whole rendered group through ``promtool check
rules``), saves and audits it, and queues the write on commit; nothing is saved when either check
fails. The worker (``alert_rules_apply``) renders the environment's file, writes it beside the target,
checks it with promtool, renames it over the old one and asks Prometheus to reload, and audits the
outcome: a page never waits on Prometheus. An environment gets its file when it becomes active
(``environment_record_provisioned``) and loses it at teardown.

The rule settings live here, below alerting, for the same reason as the dashboards: activation and
teardown happen in this app, which may not call upward.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import AlertRuleFile, AlertRuleSetting, ProjectEnvironment
from clusters.selectors.alert_rules import alert_rule_settings
from clusters.selectors.monitoring import monitoring_scope
from clusters.services.monitoring_config import (
    ConfigRejected,
    prometheus_reload,
    promtool_check,
    rules_dir,
    write_checked,
)
from observability.monitoring.alert_rules import (
    ALERTNAMES,
    RuleSetting,
    render_rules,
    rule_spec,
    setting_errors,
)
from observability.services import audit_record
from opsportal import runs
from projects.access import Action, check

logger = logging.getLogger(__name__)

FIELDS = ("enabled", "threshold", "for_seconds", "severity")
# The check runs in the request that saves a change (about 30 ms here): a promtool that hangs must not
# hold the page for the config apply's minute.
REQUEST_PROMTOOL_TIMEOUT_SECONDS = 5


def rules_enabled() -> bool:
    """The portal writes rule files only where it manages Prometheus' files."""
    return bool(rules_dir())


def rule_file_name(*, project: str, environment: str) -> str:
    # Project names are DNS labels and environments have no dot: the name is unambiguous.
    return f"{project}.{environment}.yml"


def _rule_file(environment: ProjectEnvironment) -> Path:
    return Path(rules_dir()) / rule_file_name(
        project=environment.project.name, environment=environment.environment
    )


def alert_rules_check(text: str) -> None:
    """``promtool check rules`` on a rule file's text: ConfigRejected with promtool's message."""
    with tempfile.TemporaryDirectory(prefix="opsportal-rules-") as tmp:
        path = Path(tmp) / "rules.yml"
        path.write_text(text)
        promtool_check(path, what="rules", shown_as="the rule file", timeout=REQUEST_PROMTOOL_TIMEOUT_SECONDS)


def alert_rule_update(
    *,
    environment: ProjectEnvironment,
    rule: str,
    actor,
    enabled: bool | None = None,
    threshold: float | None = None,
    for_seconds: int | None = None,
    severity: str | None = None,
    remote_addr: str | None = None,
) -> RuleSetting:
    """Change one rule of ``environment`` (owners and ops); the fields left None keep their value.

    ValidationError with field messages for a value out of range or a group promtool refuses (nothing is
    saved then); the new setting otherwise, its rule file queued for writing on commit."""
    project = environment.project
    check(actor, Action.EDIT_PROJECT, project)
    if rule_spec(rule) is None:
        raise ValidationError(
            {"rule": _("No such rule. The rules are: %(rules)s.") % {"rules": ", ".join(ALERTNAMES)}}
        )
    wanted = {"enabled": enabled, "threshold": threshold, "for_seconds": for_seconds, "severity": severity}
    with transaction.atomic():
        # One change per environment at a time: the group checked is the group saved.
        ProjectEnvironment.objects.select_for_update().filter(pk=environment.pk).first()
        current = {s.alertname: s for s in alert_rule_settings(environment)}
        before = current[rule]
        after = RuleSetting(
            alertname=rule,
            **{f: getattr(before, f) if wanted[f] is None else wanted[f] for f in FIELDS},
        )
        if isinstance(after.threshold, int) and not isinstance(after.threshold, bool):
            after = dataclasses.replace(after, threshold=float(after.threshold))
        errors = setting_errors(after)
        if errors:
            raise ValidationError(errors)
        if after == before:
            return before
        if rules_enabled():
            current[rule] = after
            try:
                alert_rules_check(
                    render_rules(
                        monitoring_scope(environment),
                        list(current.values()),
                        settings.ALERT_RULES_RATE_WINDOW,
                    )
                )
            except ConfigRejected as exc:
                raise ValidationError(
                    {"threshold": _("Prometheus would refuse this rule: %(e)s") % {"e": exc}}
                ) from exc
        row, _created = AlertRuleSetting.objects.update_or_create(
            environment=environment,
            rule=rule,
            defaults={
                "enabled": after.enabled,
                "threshold": after.threshold,
                "for_seconds": after.for_seconds,
                "severity": after.severity,
                "updated_by": actor if getattr(actor, "is_authenticated", False) else None,
            },
        )
        audit_record(
            actor=actor,
            verb="alert_rule.update",
            target=row,
            project=project,
            changes={
                "environment": environment.environment,
                "rule": rule,
                **{
                    f: [getattr(before, f), getattr(after, f)]
                    for f in FIELDS
                    if getattr(before, f) != getattr(after, f)
                },
            },
            remote_addr=remote_addr,
        )
        alert_rules_request_apply(environment=environment, reason=f"{rule} changed")
    return after


# --- the rule file --------------------------------------------------------------------------------------


def alert_rules_request_apply(*, environment: ProjectEnvironment, reason: str) -> bool:
    """Queue writing the environment's rule file on commit; False when the portal writes no rule files."""
    if not rules_enabled():
        return False
    from clusters.tasks import apply_alert_rules

    AlertRuleFile.objects.update_or_create(environment=environment, defaults={"requested_at": timezone.now()})
    runs.queue(apply_alert_rules, environment_id=environment.pk, reason=reason[:200])
    return True


def alert_rules_request_remove(*, environment: ProjectEnvironment) -> bool:
    """Queue removing the environment's rule file on commit (the environment is torn down)."""
    if not rules_enabled():
        return False
    from clusters.tasks import remove_alert_rules

    runs.queue(
        remove_alert_rules,
        file_name=rule_file_name(project=environment.project.name, environment=environment.environment),
    )
    return True


def _write_rule_file(environment_id: int, reason: str) -> tuple[str, str] | None:
    """Render and write one environment's file, audited; (file name, why it failed or '') or None for an
    environment gone since. The row stays locked from the render to the rename, so two writers cannot
    put an older group over a newer one; a file promtool rejects leaves the previous one in place."""
    with transaction.atomic():
        environment = (
            ProjectEnvironment.objects.select_for_update()
            .select_related("project")
            .filter(pk=environment_id)
            .first()
        )
        if environment is None or not environment.namespace:
            return None  # torn down since: its removal takes the file away
        target = _rule_file(environment)
        error = ""
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            text = render_rules(
                monitoring_scope(environment),
                alert_rule_settings(environment),
                settings.ALERT_RULES_RATE_WINDOW,
            )
            write_checked(target, text, what="rules")
        except (ConfigRejected, ValueError) as exc:
            error = str(exc)
        except OSError as exc:
            error = f"{target.parent} cannot be created: {exc.strerror or exc}"
        audit_record(
            actor=None,
            verb="alert_rules.apply",
            target=environment,
            project=environment.project,
            changes={"file": target.name, "reason": reason[:200], "error": error[:2000]},
        )
    if error:
        logger.warning("alert rules of %s not written: %s", target.name, error)
    return target.name, error


def alert_rules_apply(*, environment_id: int, reason: str = "") -> str:
    """Write the environment's rule file and reload Prometheus; returns why it did not work, or ''."""
    if not rules_enabled():
        return "the portal writes no rule files here (PROMETHEUS_CONFIG_FILE is not set)"
    written = _write_rule_file(environment_id, reason)
    if written is None:
        return ""
    error = written[1] or prometheus_reload()
    _record_outcome(environment_id, error)
    return error


def alert_rules_apply_all(*, reason: str) -> dict[str, str]:
    """Write every active environment's rule file, then reload once (`make run`, a new Prometheus).
    Returns file name → why it failed ('' when written); {"": cause} when the reload failed."""
    if not rules_enabled():
        return {}
    ids = (
        ProjectEnvironment.objects.filter(cluster__isnull=False)
        .exclude(namespace="")
        .values_list("pk", flat=True)
    )
    written = {pk: _write_rule_file(pk, reason) for pk in ids}
    cause = prometheus_reload()
    outcome = {}
    for pk, result in written.items():
        if result is not None:
            _record_outcome(pk, result[1] or cause)
            outcome[result[0]] = result[1]
    if cause:
        outcome[""] = cause
    return outcome


def _record_outcome(environment_id: int, error: str) -> None:
    """What the page shows: the cause of a failed write or reload, or the time of the last success."""
    now = timezone.now()
    fields = {"attempted_at": now, "error": error[:4000]}
    if not error:
        fields["applied_at"] = now
    # An environment torn down meanwhile has no row to record on.
    if ProjectEnvironment.objects.filter(pk=environment_id).exists():
        AlertRuleFile.objects.update_or_create(environment_id=environment_id, defaults=fields)


def alert_rules_remove(*, file_name: str) -> str:
    """Delete a rule file (gone already is fine) and reload; why the reload failed, or ''."""
    directory = rules_dir()
    if not directory:
        return ""
    path = Path(directory) / Path(file_name).name  # a name, never a path out of the directory
    path.unlink(missing_ok=True)
    error = prometheus_reload()
    if error:
        logger.warning("Prometheus not reloaded after removing %s: %s", path.name, error)
    return error
