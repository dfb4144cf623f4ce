"""Who gets what: alerts through the project's policies, workflow notices through people's preferences.

Alerts. The project's policy for (environment, severity) names the channels. Per channel:
- quiet hours (local time, settings.TIME_ZONE) hold back every message but critical ones, which always go,
  until they end (then the held ones go out together);
- a firing alert whose fingerprint reached the channel within the repeat interval is not sent again (so a
  duplicate signal, or Alertmanager re-sending the same occurrence, sends nothing);
- a resolved message goes only with ``send_resolved``, and only where the firing one was sent;
- a critical policy may @-mention the owner or the on-call person (by the mobile on their profile).
An alert without a project, or whose project has no policy for it, goes to every enabled portal-wide
channel (the ops channels) with the defaults below: nothing is dropped for want of a route.

Workflow notices. The kind says who they are for (ticket submitted: ops; a test release waiting: the
project's testers, or QA when it has none; a release failed, rolled back or regressed: whoever released
it and the owner; a configuration change: its author). Each person's preference for the kind
(NotificationPreference, else DEFAULT_METHODS) says how: ``chat`` @-mentions them in the workflow
channels (the enabled robot channels of the project — only those whose config has
``"workflow_notices": true`` when any has — and the portal-wide ones for a submitted ticket, which is
always posted there), ``email`` sends to their address through the portal-wide "personal notices" email
channel (created on first use, with no recipients of its own: a Delivery's ``mentions.emails`` are the
addressees), ``off`` sends nothing. Someone who wants chat in a project without a robot channel is
emailed instead; someone who wants email but has no address is mentioned in chat instead.
"""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from alerting import messages
from alerting.choices import AlertStatus, ChannelKind, Mention, NoticeMethod, Severity
from alerting.models import Alert, AlertTransition, Channel, Delivery, NotificationPreference, Policy
from alerting.services.delivery import delivery_enqueue
from observability.services import audit_record, changes_between
from opsportal.notices import Notice, NoticeKind, absolute_url
from projects.access import Action, check, is_ops
from projects.choices import OPS_GROUP, QA_GROUP, Role
from projects.models import Project, ProjectMember, UserProfile

logger = logging.getLogger(__name__)

CAUSE_FIRING = "alert-firing"
CAUSE_RESOLVED = "alert-resolved"
# Used where no policy applies (portal-wide routing).
DEFAULT_REPEAT_MINUTES = 240
ROBOT_KINDS = frozenset({ChannelKind.DINGTALK, ChannelKind.WECOM})
PERSONAL_EMAIL_CHANNEL = "personal-notices"

DEFAULT_METHODS: dict[str, str] = {
    NoticeKind.TICKET_SUBMITTED: NoticeMethod.CHAT,
    NoticeKind.RELEASE_AWAITING_CONFIRMATION: NoticeMethod.CHAT,
    NoticeKind.RELEASE_FAILED: NoticeMethod.CHAT,
    NoticeKind.RELEASE_ROLLED_BACK: NoticeMethod.CHAT,
    NoticeKind.RELEASE_REGRESSED: NoticeMethod.CHAT,
    NoticeKind.CONFIG_APPLIED: NoticeMethod.EMAIL,  # good news, no hurry
    NoticeKind.CONFIG_FAILED: NoticeMethod.CHAT,
}

POLICY_FIELDS = (
    "environment",
    "severity",
    "repeat_interval_minutes",
    "quiet_start",
    "quiet_end",
    "send_resolved",
    "mention",
    "on_call",
)


# --- alerts --------------------------------------------------------------------------------------------


def in_quiet_hours(policy: Policy | None, now: datetime) -> bool:
    if policy is None or policy.quiet_start is None or policy.quiet_end is None:
        return False
    start, end = policy.quiet_start, policy.quiet_end
    local = timezone.localtime(now, ZoneInfo(settings.TIME_ZONE)).time()
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end  # the window spans midnight


def quiet_hours_end(policy: Policy, now: datetime) -> datetime:
    """When the quiet hours that contain ``now`` end (call only inside them)."""
    zone = ZoneInfo(settings.TIME_ZONE)
    local = timezone.localtime(now, zone)
    end = datetime.combine(local.date(), policy.quiet_end, tzinfo=zone)
    return end if end > local else end + timedelta(days=1)


def alert_path(alert: Alert) -> str:
    """The project's alerts page (the portal's alert list for an alert without a project)."""
    try:
        if alert.project is not None:
            return reverse("alerting:project-alerts", kwargs={"name": alert.project.name})
        return reverse("alerting:alert-list")
    except NoReverseMatch:
        return f"/projects/{alert.project.name}/alerts/" if alert.project is not None else "/alerts/"


def _portal_channels() -> list[Channel]:
    return list(
        Channel.objects.filter(project__isnull=True, enabled=True).exclude(name=PERSONAL_EMAIL_CHANNEL)
    )


def _alert_routes(alert: Alert) -> list[tuple[Channel, Policy | None]]:
    policy = None
    if alert.project_id is not None:
        policy = (
            Policy.objects.select_related("on_call", "project__owner")
            .filter(project_id=alert.project_id, environment=alert.environment, severity=alert.severity)
            .first()
        )
    if policy is None:
        return [(channel, None) for channel in _portal_channels()]
    return [(channel, policy) for channel in policy.channels.filter(enabled=True)]


def _mobile(user) -> str:
    if user is None:
        return ""
    return UserProfile.objects.filter(user=user).values_list("mobile", flat=True).first() or ""


def _alert_mentions(alert: Alert, policy: Policy | None, channel: Channel) -> dict:
    if policy is None or alert.severity != Severity.CRITICAL or channel.kind not in ROBOT_KINDS:
        return {}
    person = {Mention.OWNER: policy.project.owner, Mention.ON_CALL: policy.on_call}.get(policy.mention)
    mobile = _mobile(person)
    return {"mobiles": [mobile]} if mobile else {}


def _skip_reason(alert: Alert, transition: str, channel: Channel, policy: Policy | None, now) -> str:
    sent = Delivery.objects.filter(channel=channel, alert__fingerprint=alert.fingerprint)
    if transition == AlertStatus.FIRING:
        minutes = policy.repeat_interval_minutes if policy else DEFAULT_REPEAT_MINUTES
        if sent.filter(cause=CAUSE_FIRING, created_at__gte=now - timedelta(minutes=minutes)).exists():
            return "repeat interval"
        return ""
    if policy is not None and not policy.send_resolved:
        return "send_resolved off"
    if not sent.filter(cause=CAUSE_FIRING).exists():
        return "firing never sent"
    if sent.filter(alert=alert, cause=CAUSE_RESOLVED).exists():
        return "already sent"
    return ""


def alert_route(*, alert_id: int, transition: str) -> list[Delivery]:
    """Queue the messages of one alert transition (firing or resolved); returns the deliveries made."""
    alert = Alert.objects.select_related("project").filter(pk=alert_id).first()
    if alert is None or transition not in AlertStatus.values:
        return []
    cause = CAUSE_RESOLVED if transition == AlertStatus.RESOLVED else CAUSE_FIRING
    link = absolute_url(alert_path(alert))
    made = []
    with transaction.atomic():
        routes = _alert_routes(alert)
        # One router at a time per channel: two signals for the same alert cannot both pass the repeat
        # check below.
        locked = set(
            Channel.objects.select_for_update()
            .filter(pk__in=[c.pk for c, _p in routes])
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        now = timezone.now()
        for channel, policy in routes:
            if channel.pk not in locked:
                continue
            reason = _skip_reason(alert, transition, channel, policy, now)
            if reason:
                logger.info("alert %s (%s) not sent to %s: %s", alert.pk, transition, channel, reason)
                continue
            # Quiet hours hold everything but critical until they end, when the held messages go out
            # together (the sender merges waiting deliveries of a robot into one).
            held = alert.severity != Severity.CRITICAL and in_quiet_hours(policy, now)
            message = messages.render_alert(
                alert, transition=transition, channel_kind=channel.kind, link=link
            )
            made.append(
                delivery_enqueue(
                    channel=channel,
                    cause=cause,
                    title=message.title,
                    text=message.text,
                    link=link,
                    mentions=_alert_mentions(alert, policy, channel),
                    alert=alert,
                    not_before=quiet_hours_end(policy, now) if held else None,
                )
            )
        AlertTransition.objects.filter(alert=alert, status=transition, routed_at__isnull=True).update(
            routed_at=now
        )
    return made


def alert_transitions_route_missed() -> int:
    """Route the alert changes whose routing failed or was lost (their process died between the commit
    and the routing). Routing is safe to repeat: a channel that already got the message is skipped by the
    repeat interval (firing) or by "already sent" (resolved). Returns how many changes were routed."""
    now = timezone.now()
    missed = AlertTransition.objects.filter(
        routed_at__isnull=True,
        recorded_at__lt=now - timedelta(seconds=settings.ALERT_ROUTE_GRACE_SECONDS),
        recorded_at__gte=now - timedelta(days=1),  # older news is history, not a message
    ).values_list("alert_id", "status")
    routed = 0
    for alert_id, status in list(missed[:500]):
        try:
            alert_route(alert_id=alert_id, transition=status)
        except Exception:
            logger.exception("routing alert %s (%s) failed again", alert_id, status)
            continue
        routed += 1
    return routed


# --- workflow notices ------------------------------------------------------------------------------------


def _active_users(*conditions, **filters):
    return get_user_model().objects.filter(*conditions, is_active=True, **filters)


def notice_recipients(notice: Notice, project: Project) -> list:
    """The people a notice is for, in a stable order; the actor only when named in ``user_ids``."""
    kind = notice.kind
    named = list(_active_users(pk__in=notice.user_ids))
    if kind == NoticeKind.TICKET_SUBMITTED:
        role_based = list(_active_users(Q(groups__name=OPS_GROUP) | Q(is_superuser=True)).distinct())
    elif kind == NoticeKind.RELEASE_AWAITING_CONFIRMATION:
        testers = ProjectMember.objects.filter(project=project, role=Role.TESTER).values("user")
        role_based = list(_active_users(pk__in=testers)) or list(_active_users(groups__name=QA_GROUP))
    elif kind in (NoticeKind.RELEASE_FAILED, NoticeKind.RELEASE_ROLLED_BACK, NoticeKind.RELEASE_REGRESSED):
        role_based = [project.owner] if project.owner.is_active else []
    else:
        role_based = []
    people = {user.pk: user for user in named}
    for user in role_based:
        if user.pk != notice.actor_id:
            people.setdefault(user.pk, user)
    return sorted(people.values(), key=lambda user: user.username)


def preferences_of(user) -> dict[str, str]:
    """Every notice kind with the person's method (their choice, else the default)."""
    chosen = dict(NotificationPreference.objects.filter(user=user).values_list("kind", "method"))
    return {
        kind: chosen.get(kind, DEFAULT_METHODS.get(kind, NoticeMethod.CHAT)) for kind in NoticeKind.values
    }


def workflow_channels(project: Project | None) -> list[Channel]:
    """The robot channels workflow notices are posted in: those flagged ``workflow_notices`` in their
    config when any is, else every enabled robot channel of the project (portal-wide for None)."""
    robots = list(Channel.objects.filter(project=project, enabled=True, kind__in=ROBOT_KINDS))
    flagged = [channel for channel in robots if (channel.config or {}).get("workflow_notices") is True]
    return flagged or robots


def personal_email_channel() -> Channel:
    channel, _created = Channel.objects.get_or_create(
        project=None,
        name=PERSONAL_EMAIL_CHANNEL,
        defaults={"kind": ChannelKind.EMAIL, "config": {"recipients": []}},
    )
    return channel


def _send(channel: Channel, notice: Notice, message: messages.Message, link: str, mentions: dict) -> Delivery:
    return delivery_enqueue(
        channel=channel,
        cause=notice.kind,
        title=message.title,
        text=message.text,
        link=link,
        mentions=mentions,
    )


def notice_route(*, notice: Notice) -> list[Delivery]:
    """Queue the messages of one workflow notice; returns the deliveries made."""
    project = Project.objects.select_related("owner").filter(pk=notice.project_id).first()
    if project is None:
        return []
    people = notice_recipients(notice, project)
    chat, email = [], []
    for person in people:
        method = preferences_of(person)[notice.kind]
        if method == NoticeMethod.EMAIL and person.email:
            email.append(person)
        elif method != NoticeMethod.OFF:
            chat.append(person)  # chat, or email without an address: the mention still reaches them
    portal_wide = notice.kind == NoticeKind.TICKET_SUBMITTED
    channels = workflow_channels(None if portal_wide else project)
    if not channels:
        email, chat = email + chat, []  # nobody is left out for want of a robot
    link = absolute_url(notice.path)
    made = []
    with transaction.atomic():
        if chat or (portal_wide and channels):
            mobiles = [mobile for mobile in (_mobile(person) for person in chat) if mobile]
            for channel in channels:
                message = messages.render_notice(
                    notice,
                    project=project,
                    channel_kind=channel.kind,
                    link=link,
                    recipients=[person.username for person in chat],
                )
                made.append(_send(channel, notice, message, link, {"mobiles": mobiles} if mobiles else {}))
        addressed = [person for person in email if person.email]
        if addressed:
            channel = personal_email_channel()
            message = messages.render_notice(
                notice, project=project, channel_kind=ChannelKind.EMAIL, link=link, recipients=[]
            )
            made += [_send(channel, notice, message, link, {"emails": [p.email]}) for p in addressed]
        for person in email:
            if not person.email:
                logger.warning("notice %s for %s not sent: no robot channel, no address", notice.kind, person)
    return made


# --- policies --------------------------------------------------------------------------------------------


def _policy_errors(project: Project, values: dict, channels: list[Channel]) -> dict:
    errors: dict[str, list[str]] = {}
    foreign = [channel.name for channel in channels if channel.project_id != project.pk]
    if foreign:
        errors["channels"] = [
            _("Choose channels of project %(p)s; not: %(names)s.")
            % {"p": project.name, "names": ", ".join(foreign)}
        ]
    if (values["quiet_start"] is None) != (values["quiet_end"] is None):
        errors["quiet_end"] = [_("Give both ends of the quiet hours, or neither.")]
    mention = values["mention"]
    if mention != Mention.NONE and values["severity"] != Severity.CRITICAL:
        errors["mention"] = [_("Only a critical policy @-mentions someone.")]
    on_call = values["on_call"]
    if mention == Mention.ON_CALL and on_call is None:
        errors["on_call"] = [_("Choose the on-call person to mention.")]
    if on_call is not None and not (
        is_ops(on_call) or ProjectMember.objects.filter(project=project, user=on_call).exists()
    ):
        errors["on_call"] = [_("The on-call person must be a member of the project or ops.")]
    minutes = values["repeat_interval_minutes"]
    if not 1 <= minutes <= 7 * 24 * 60:
        errors["repeat_interval_minutes"] = [_("Between 1 minute and 7 days (10080 minutes).")]
    return errors


def _audit_values(policy: Policy) -> dict:
    return {
        "environment": policy.environment,
        "severity": policy.severity,
        "channels": sorted(policy.channels.values_list("name", flat=True)),
        "repeat_interval_minutes": policy.repeat_interval_minutes,
        "quiet_start": policy.quiet_start.isoformat() if policy.quiet_start else None,
        "quiet_end": policy.quiet_end.isoformat() if policy.quiet_end else None,
        "send_resolved": policy.send_resolved,
        "mention": policy.mention,
        "on_call": policy.on_call.get_username() if policy.on_call else None,
    }


@transaction.atomic
def policy_create(
    *,
    actor,
    project: Project,
    environment: str,
    severity: str,
    channels: list[Channel],
    repeat_interval_minutes: int = DEFAULT_REPEAT_MINUTES,
    quiet_start: time | None = None,
    quiet_end: time | None = None,
    send_resolved: bool = True,
    mention: str = Mention.NONE,
    on_call=None,
    remote_addr: str | None = None,
) -> Policy:
    """Add the policy of one environment × severity (owner or ops); audited."""
    check(actor, Action.EDIT_PROJECT, project)
    Project.objects.select_for_update().get(pk=project.pk)
    values = {
        "environment": environment,
        "severity": severity,
        "repeat_interval_minutes": repeat_interval_minutes,
        "quiet_start": quiet_start,
        "quiet_end": quiet_end,
        "send_resolved": send_resolved,
        "mention": mention,
        "on_call": on_call,
    }
    errors = _policy_errors(project, values, channels)
    if Policy.objects.filter(project=project, environment=environment, severity=severity).exists():
        errors.setdefault("severity", []).append(
            _("%(env)s · %(sev)s already has a policy; change that one.")
            % {"env": environment, "sev": severity}
        )
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            policy = Policy.objects.create(project=project, **values)
    except IntegrityError:  # pragma: no cover - the project lock above serialises creators
        raise ValidationError({"severity": [_("This policy exists already.")]}) from None
    policy.channels.set(channels)
    audit_record(
        actor=actor,
        verb="alert_policy.create",
        target=policy,
        project=project,
        changes=_audit_values(policy),
        remote_addr=remote_addr,
    )
    return policy


@transaction.atomic
def policy_update(
    *, actor, policy_id: int, channels: list[Channel] | None = None, remote_addr: str | None = None, **fields
) -> Policy:
    """Change a policy (owner or ops): only the given fields; audited with old and new values."""
    unknown = set(fields) - set(POLICY_FIELDS)
    if unknown:
        raise TypeError(f"unknown policy fields: {sorted(unknown)}")
    policy = (
        Policy.objects.select_for_update(of=("self",)).select_related("project", "on_call").get(pk=policy_id)
    )
    check(actor, Action.EDIT_PROJECT, policy.project)
    before = _audit_values(policy)
    values = {name: fields.get(name, getattr(policy, name)) for name in POLICY_FIELDS}
    new_channels = list(policy.channels.all()) if channels is None else channels
    errors = _policy_errors(policy.project, values, new_channels)
    clash = (
        Policy.objects.filter(
            project=policy.project, environment=values["environment"], severity=values["severity"]
        )
        .exclude(pk=policy.pk)
        .exists()
    )
    if clash:
        errors.setdefault("severity", []).append(
            _("%(env)s · %(sev)s already has a policy; change that one.")
            % {"env": values["environment"], "sev": values["severity"]}
        )
    if errors:
        raise ValidationError(errors)
    for name, value in values.items():
        setattr(policy, name, value)
    policy.save()
    policy.channels.set(new_channels)
    changes = changes_between(before, _audit_values(policy))
    if changes:
        audit_record(
            actor=actor,
            verb="alert_policy.update",
            target=policy,
            project=policy.project,
            changes=changes,
            remote_addr=remote_addr,
        )
    return policy


@transaction.atomic
def policy_delete(*, actor, policy_id: int, remote_addr: str | None = None) -> None:
    policy = Policy.objects.select_for_update(of=("self",)).select_related("project").get(pk=policy_id)
    check(actor, Action.EDIT_PROJECT, policy.project)
    audit_record(
        actor=actor,
        verb="alert_policy.delete",
        target=policy,
        project=policy.project,
        changes=_audit_values(policy),
        remote_addr=remote_addr,
    )
    policy.delete()


# --- preferences -----------------------------------------------------------------------------------------


@transaction.atomic
def notification_preferences_set(
    *, actor, methods: dict[str, str], mobile: str | None = None, remote_addr: str | None = None
) -> dict[str, str]:
    """Set the signed-in person's method per notice kind, and the mobile robots mention them by."""
    errors: dict[str, list[str]] = {}
    for kind, method in methods.items():
        if kind not in NoticeKind.values:
            errors[kind] = [_("Unknown kind of notice.")]
        elif method not in NoticeMethod.values:
            errors[kind] = [_("Choose chat, email or off.")]
    profile, _created = UserProfile.objects.select_for_update().get_or_create(user=actor)
    new_mobile = profile.mobile if mobile is None else mobile.strip()
    if new_mobile != profile.mobile:
        profile.mobile = new_mobile
        try:
            profile.full_clean(validate_unique=False)
        except ValidationError as exc:
            errors["mobile"] = exc.message_dict.get("mobile", exc.messages)
    if errors:
        raise ValidationError(errors)
    before = preferences_of(actor)
    changes: dict = {
        kind: [before[kind], method] for kind, method in methods.items() if before[kind] != method
    }
    for kind, method in methods.items():
        NotificationPreference.objects.update_or_create(user=actor, kind=kind, defaults={"method": method})
    stored = UserProfile.objects.filter(pk=profile.pk).values_list("mobile", flat=True).first()
    if stored != profile.mobile:
        profile.save(update_fields=["mobile"])
        changes["mobile"] = "changed"  # personal: the log says that it changed, not to what
    if changes:
        audit_record(
            actor=actor,
            verb="notification_preferences.update",
            target=profile,
            changes=changes,
            remote_addr=remote_addr,
        )
    return preferences_of(actor)
