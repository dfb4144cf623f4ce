"""The words of alert and workflow messages: short, in the project's language, with the portal link.

Robots (DingTalk, WeCom) get Markdown; email gets plain text; SMS one short line. An alert is rendered
from its alertname (the six rules of observability.monitoring) with the annotations ``value`` and
``threshold``; any other alert falls back to its ``summary`` annotation.

The language is the project's ``message_language``; blank means Simplified Chinese for production (the
ops group chats read Chinese) and the portal's default language (LANGUAGE_CODE) for test and for
anything without an environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from alerting.choices import AlertStatus, ChannelKind, Severity
from alerting.models import Alert
from opsportal.notices import Notice, NoticeKind
from projects.models import Project

SMS_LIMIT = 70  # one SMS segment of Chinese text

# alertname -> (headline, the line comparing value with threshold)
_RULES = {
    "ErrorRatioHigh": (
        gettext_lazy("Error ratio high"),
        gettext_lazy("Error ratio %(value)s, threshold %(threshold)s"),
    ),
    "LatencyP95High": (
        gettext_lazy("p95 latency high"),
        gettext_lazy("p95 latency %(value)s s, threshold %(threshold)s s"),
    ),
    "PodRestarting": (
        gettext_lazy("Pod restarting"),
        gettext_lazy("%(value)s restarts, threshold %(threshold)s"),
    ),
    "PodsNotReady": (
        gettext_lazy("Pods not ready"),
        gettext_lazy("%(value)s pods not ready, threshold %(threshold)s"),
    ),
    "HPAAtMaximum": (
        gettext_lazy("Autoscaler at its maximum"),
        gettext_lazy("%(value)s replicas, the maximum is %(threshold)s"),
    ),
    "TargetDown": (
        gettext_lazy("Scrape target down"),
        gettext_lazy("Value %(value)s, threshold %(threshold)s"),
    ),
}


@dataclass(frozen=True)
class Message:
    title: str
    text: str


def message_language(project: Project | None, environment: str) -> str:
    if project is not None and project.message_language:
        return project.message_language
    return "zh-hans" if environment == "prod" else settings.LANGUAGE_CODE


def _number(raw) -> str:
    """Alertmanager's ``{{ $value }}`` is a float written in full (0.30000000000000004): four digits do."""
    try:
        return f"{float(raw):.4g}"
    except (TypeError, ValueError):
        return str(raw or "")


def _alert_words(alert: Alert) -> tuple[str, str]:
    """(headline, value-vs-threshold line) in the active language."""
    annotations = alert.annotations or {}
    numbers = {"value": _number(annotations.get("value")), "threshold": _number(annotations.get("threshold"))}
    rule = _RULES.get(alert.alertname)
    if rule is not None:
        headline, detail = rule
        return str(headline), (str(detail) % numbers if numbers["value"] else "")
    headline = str(annotations.get("summary") or alert.alertname)
    detail = _("Value %(value)s, threshold %(threshold)s") % numbers if numbers["threshold"] else ""
    return headline, detail


def _scope(project_name: str, environment: str) -> str:
    return " · ".join(part for part in (project_name, environment) if part) or _("portal")


def render_alert(alert: Alert, *, transition: str, channel_kind: str, link: str) -> Message:
    with translation.override(message_language(alert.project, alert.environment)):
        labels = alert.labels or {}
        headline, detail = _alert_words(alert)
        state = _("Resolved") if transition == AlertStatus.RESOLVED else _("Firing")
        severity = (
            str(Severity(alert.severity).label) if alert.severity in Severity.values else alert.severity
        )
        project_name = alert.project.name if alert.project else labels.get("project", "")
        scope = _scope(project_name, alert.environment)
        service = labels.get("service", "")
        title = f"[{state} · {severity}] {scope}: {headline}"
        facts = [
            _("Severity: %(s)s") % {"s": severity},
            _("Project: %(p)s · Environment: %(e)s")
            % {"p": project_name or "-", "e": alert.environment or "-"},
        ]
        if service:
            facts.append(_("Service: %(s)s") % {"s": service})
        if labels.get("pod"):
            facts.append(_("Pod: %(p)s") % {"p": labels["pod"]})
        if detail:
            facts.append(detail)
        when = alert.ends_at if transition == AlertStatus.RESOLVED and alert.ends_at else alert.starts_at
        facts.append(
            (_("Resolved at %(t)s") if transition == AlertStatus.RESOLVED else _("Since %(t)s"))
            % {"t": timezone.localtime(when).strftime("%Y-%m-%d %H:%M:%S")}
        )
        return _compose(channel_kind, title=title, facts=facts, link=link, sms=f"{headline} {detail}")


def render_notice(
    notice: Notice, *, project: Project, channel_kind: str, link: str, recipients: list[str]
) -> Message:
    with translation.override(message_language(project, notice.environment)):
        context = {
            "project": project.name,
            "environment": notice.environment or "-",
            **{key: value for key, value in notice.context.items() if isinstance(value, str | int | float)},
        }
        title = _notice_title(notice.kind, context)
        facts = [_("Project: %(p)s · Environment: %(e)s") % {"p": project.name, "e": context["environment"]}]
        for key, label in (("reason", _("Reason: %(v)s")), ("error", _("Error: %(v)s"))):
            if context.get(key):
                facts.append(label % {"v": str(context[key]).strip().splitlines()[0][:300]})
        if recipients:
            facts.append(_("For: %(names)s") % {"names": ", ".join(f"@{name}" for name in recipients)})
        return _compose(channel_kind, title=title, facts=facts, link=link, sms=title)


def _notice_title(kind: str, context: dict) -> str:
    titles = {
        NoticeKind.TICKET_SUBMITTED: _(
            "Ticket #%(ticket)s for %(project)s · %(environment)s waits for review"
        ),
        NoticeKind.RELEASE_AWAITING_CONFIRMATION: _(
            "Release %(version)s of %(project)s is deployed in test and waits for confirmation"
        ),
        NoticeKind.RELEASE_FAILED: _("Release %(version)s of %(project)s · %(environment)s failed"),
        NoticeKind.RELEASE_ROLLED_BACK: _(
            "Release %(version)s of %(project)s · %(environment)s was rolled back"
        ),
        NoticeKind.RELEASE_REGRESSED: _(
            "Release %(version)s of %(project)s · %(environment)s regressed after rollout"
        ),
        NoticeKind.CONFIG_APPLIED: _(
            "Configuration change #%(change)s of %(project)s · %(environment)s was applied"
        ),
        NoticeKind.CONFIG_FAILED: _(
            "Configuration change #%(change)s of %(project)s · %(environment)s failed"
        ),
    }
    template = titles.get(kind)
    if template is None:
        return f"{kind}: {context['project']}"
    try:
        return template % {"ticket": "?", "version": "?", "change": "?", **context}
    except (KeyError, TypeError, ValueError):
        return f"{kind}: {context['project']}"


def _compose(channel_kind: str, *, title: str, facts: list[str], link: str, sms: str) -> Message:
    if channel_kind in (ChannelKind.DINGTALK, ChannelKind.WECOM):
        lines = [f"### {title}", *(f"- {fact}" for fact in facts)]
        if link:
            lines.append(f"[{_('Open in OpsPortal')}]({link})")
        return Message(title=title, text="\n".join(lines))
    if channel_kind == ChannelKind.SMS:
        short = " ".join(sms.split())
        room = SMS_LIMIT - len(link) - 1
        return Message(title=title, text=f"{short[: max(room, 20)]} {link}".strip())
    lines = [title, "", *facts]
    if link:
        lines += ["", link]
    return Message(title=title, text="\n".join(lines))
