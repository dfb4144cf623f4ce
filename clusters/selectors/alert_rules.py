"""What an environment's alert rules are set to: its saved settings over the rules' defaults."""

from __future__ import annotations

from dataclasses import dataclass

from clusters.models import AlertRuleFile, AlertRuleSetting, ProjectEnvironment
from observability.monitoring.alert_rules import RULES, RuleSetting, RuleSpec, default_setting


@dataclass(frozen=True)
class RuleRow:
    spec: RuleSpec
    setting: RuleSetting
    default: RuleSetting
    saved: AlertRuleSetting | None

    @property
    def customized(self) -> bool:
        return self.setting != self.default


def alert_rule_rows(environment: ProjectEnvironment) -> list[RuleRow]:
    """Every rule, in the order of RULES, with what the environment set (or the default)."""
    saved = {row.rule: row for row in AlertRuleSetting.objects.filter(environment=environment)}
    rows = []
    for spec in RULES:
        row = saved.get(spec.alertname)
        default = default_setting(spec.alertname)
        setting = default
        if row is not None:
            setting = RuleSetting(spec.alertname, row.enabled, row.threshold, row.for_seconds, row.severity)
        rows.append(RuleRow(spec=spec, setting=setting, default=default, saved=row))
    return rows


def alert_rule_settings(environment: ProjectEnvironment) -> list[RuleSetting]:
    return [row.setting for row in alert_rule_rows(environment)]


def alert_rules_summary(environment: ProjectEnvironment, *, enabled: bool) -> dict:
    """``status``: off (the portal writes no rule files here), none (never written), pending, applied or
    failed; ``error`` (why the last write or reload failed; Prometheus runs the previous file) and
    ``applied_at`` (the last success, or None)."""
    if not enabled:
        return {"status": "off", "error": "", "applied_at": None}
    state = AlertRuleFile.objects.filter(environment=environment).first()
    if state is None:
        return {"status": "none", "error": "", "applied_at": None}
    return {"status": state.status, "error": state.error, "applied_at": state.applied_at}
