"""Channels: where alert and workflow messages go. Ops manage the portal-wide ones (no project); a
project's owners and ops manage the project's.

What a channel needs, per kind (``config`` is shown back, ``secret`` is encrypted JSON and never is):

- DingTalk robot: ``access_token`` and the optional 加签 ``signing_secret`` (secret), the optional
  ``keyword`` (config; the portal puts it in every message's title so the robot's keyword check passes);
- WeCom robot: ``key`` (secret);
- email: ``recipients`` (config);
- SMS: ``numbers``, the approved ``sign_name`` and ``template_code`` (config); the AccessKey is the
  portal's (SMS_ACCESS_KEY_ID / SMS_ACCESS_KEY_SECRET).

A secret field left blank on an edit keeps the stored value. Every change is audited without the secrets.
"""

from __future__ import annotations

import hashlib
import json
import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils.translation import gettext as _

from alerting.choices import ChannelKind
from alerting.models import Channel, Delivery
from observability.services import audit_record, changes_between
from opsportal.errors import StateConflict
from opsportal.notices import absolute_url
from opsportal.secrets import SecretText
from projects.models import Project

CONFIG_FIELDS: dict[str, tuple[str, ...]] = {
    ChannelKind.DINGTALK: ("keyword",),
    ChannelKind.WECOM: (),
    ChannelKind.EMAIL: ("recipients",),
    ChannelKind.SMS: ("numbers", "sign_name", "template_code"),
}
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    ChannelKind.DINGTALK: ("access_token", "signing_secret"),
    ChannelKind.WECOM: ("key",),
    ChannelKind.EMAIL: (),
    ChannelKind.SMS: (),
}
REQUIRED_SECRETS = {ChannelKind.DINGTALK: ("access_token",), ChannelKind.WECOM: ("key",)}
ALL_CONFIG_FIELDS = ("keyword", "recipients", "numbers", "sign_name", "template_code")
ALL_SECRET_FIELDS = ("access_token", "signing_secret", "key")
MAX_ADDRESSES = 50
# A mainland mobile number, as Alibaba Cloud SMS takes it (optionally +86 / 0086 / 86).
_MOBILE = re.compile(r"(?:\+86|0086|86)?1[3-9]\d{9}")
_TEMPLATE_CODE = re.compile(r"SMS_\d{3,20}")
_CREDENTIAL = re.compile(r"[A-Za-z0-9_\-+/=.]{1,200}")


def channel_credentials(channel: Channel) -> dict[str, SecretText]:
    """The channel's decrypted credentials, for the sender only."""
    if not channel.secret:
        return {}
    data = json.loads(channel.secret)
    return {name: SecretText(value) for name, value in data.items() if isinstance(value, str)}


def robot_identity(kind: str, credentials: dict) -> str:
    """Who the robot is, without its credential: channels with the same value share one rate limit."""
    token = credentials.get("access_token") or credentials.get("key") or ""
    if kind not in (ChannelKind.DINGTALK, ChannelKind.WECOM) or not token:
        return ""
    return hashlib.sha256(f"opsportal-robot\n{kind}\n{token}".encode()).hexdigest()


def channel_has_secret(channel: Channel) -> bool:
    return bool(channel.secret)


def _addresses(value) -> list[str]:
    """A list from the API, or the one-per-line (or comma-separated) text of the page's form."""
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[\s,;]+", value)
    return [str(v).strip() for v in value if str(v).strip()]


def _clean(
    *, project: Project | None, name: str, kind: str, values: dict, stored: dict, pk: int | None
) -> tuple[dict, dict]:
    """(config, credentials) for a channel of ``kind``, or ValidationError naming each bad field."""
    errors: dict[str, str] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = _("Give the channel a name.")
    elif len(name) > 100:
        errors["name"] = _("At most 100 characters.")
    elif Channel.objects.filter(project=project, name=name).exclude(pk=pk).exists():
        errors["name"] = _("There is already a channel with this name.")
    if kind not in ChannelKind.values:
        errors["kind"] = _("Choose one of: %(kinds)s.") % {"kinds": ", ".join(ChannelKind.values)}
        raise ValidationError(errors)

    config: dict = {}
    if kind == ChannelKind.DINGTALK:
        keyword = (values.get("keyword") or "").strip()
        if len(keyword) > 64:
            errors["keyword"] = _("At most 64 characters.")
        config["keyword"] = keyword
    elif kind == ChannelKind.EMAIL:
        recipients = _addresses(values.get("recipients"))
        bad = []
        for address in recipients:
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if not recipients:
            errors["recipients"] = _("Give at least one email address.")
        elif bad:
            errors["recipients"] = _("Not an email address: %(bad)s.") % {"bad": ", ".join(bad[:5])}
        elif len(recipients) > MAX_ADDRESSES:
            errors["recipients"] = _("At most %(n)d recipients.") % {"n": MAX_ADDRESSES}
        config["recipients"] = list(dict.fromkeys(recipients))
    elif kind == ChannelKind.SMS:
        numbers = _addresses(values.get("numbers"))
        bad = [n for n in numbers if not _MOBILE.fullmatch(n)]
        if not numbers:
            errors["numbers"] = _("Give at least one mobile number.")
        elif bad:
            errors["numbers"] = _("Not a mainland China mobile number: %(bad)s.") % {
                "bad": ", ".join(bad[:5])
            }
        elif len(numbers) > MAX_ADDRESSES:
            errors["numbers"] = _("At most %(n)d numbers.") % {"n": MAX_ADDRESSES}
        sign_name = (values.get("sign_name") or "").strip()
        if not sign_name:
            errors["sign_name"] = _("Give the approved SMS sign name.")
        elif len(sign_name) > 50:
            errors["sign_name"] = _("At most 50 characters.")
        template_code = (values.get("template_code") or "").strip()
        if not _TEMPLATE_CODE.fullmatch(template_code):
            errors["template_code"] = _("Give the approved template code, e.g. SMS_480010001.")
        config.update(numbers=list(dict.fromkeys(numbers)), sign_name=sign_name, template_code=template_code)

    credentials = dict(stored)
    for field in SECRET_FIELDS[kind]:
        value = (values.get(field) or "").strip()
        if value:
            if not _CREDENTIAL.fullmatch(value):
                errors[field] = _(
                    "Paste the value as the robot's settings show it (letters, digits, - _ + / = .)."
                )
            credentials[field] = value
    for field in REQUIRED_SECRETS.get(kind, ()):
        if not credentials.get(field) and field not in errors:
            errors[field] = _("Required.")
    credentials = {k: v for k, v in credentials.items() if k in SECRET_FIELDS[kind] and v}
    if errors:
        raise ValidationError(errors)
    return config, credentials


def _shown(channel: Channel) -> dict:
    return {"name": channel.name, "kind": channel.kind, "enabled": channel.enabled, **channel.config}


def channel_create(
    *,
    actor,
    project: Project | None,
    name: str,
    kind: str,
    enabled: bool = True,
    remote_addr: str | None = None,
    **values,
) -> Channel:
    """A new channel; ``values`` are the kind's fields (ALL_CONFIG_FIELDS, ALL_SECRET_FIELDS)."""
    config, credentials = _clean(project=project, name=name, kind=kind, values=values, stored={}, pk=None)
    with transaction.atomic():
        channel = Channel.objects.create(
            project=project,
            name=name.strip(),
            kind=kind,
            enabled=enabled,
            config=config,
            secret=json.dumps(credentials) if credentials else "",
            robot=robot_identity(kind, credentials),
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        audit_record(
            actor=actor,
            verb="channel.create",
            target=channel,
            project=project,
            # Which secrets were stored, never their values (a string: the audit redacts secret-like names).
            changes={**_shown(channel), "stored_keys": ", ".join(sorted(credentials))},
            remote_addr=remote_addr,
        )
    return channel


def channel_update(*, actor, channel: Channel, remote_addr: str | None = None, **values) -> Channel:
    """Change a channel's name, enabled flag or kind fields; the kind itself stays. Blank secrets keep
    the stored ones."""
    if "kind" in values and values.pop("kind") not in (None, channel.kind):
        raise ValidationError({"kind": _("The kind of a channel cannot change; make a new channel.")})
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel.pk)
        before = _shown(channel)
        stored = channel_credentials(channel)
        merged = {**channel.config, **{k: v for k, v in values.items() if k in ALL_CONFIG_FIELDS}}
        merged.update({k: values.get(k, "") for k in ALL_SECRET_FIELDS})
        config, credentials = _clean(
            project=channel.project,
            name=values.get("name", channel.name),
            kind=channel.kind,
            values=merged,
            stored=stored,
            pk=channel.pk,
        )
        channel.name = values.get("name", channel.name).strip()
        if values.get("enabled") is not None:
            channel.enabled = bool(values["enabled"])
        channel.config = config
        secret_changed = credentials != stored
        if secret_changed:
            channel.secret = json.dumps(credentials) if credentials else ""
            channel.robot = robot_identity(channel.kind, credentials)
            # A configuration error was about the old credentials.
            channel.last_error, channel.last_error_at = "", None
        changes = changes_between(before, _shown(channel))
        if secret_changed:
            changed = sorted(k for k in set(stored) | set(credentials) if stored.get(k) != credentials.get(k))
            changes["stored_keys"] = "changed: " + ", ".join(changed)
        if not changes:
            return channel
        channel.save()
        audit_record(
            actor=actor,
            verb="channel.update",
            target=channel,
            project=channel.project,
            changes=changes,
            remote_addr=remote_addr,
        )
    return channel


def channel_delete(*, actor, channel: Channel, remote_addr: str | None = None) -> None:
    """Remove a channel and its delivery log."""
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel.pk)
        audit_record(
            actor=actor,
            verb="channel.delete",
            target=channel,
            project=channel.project,
            changes=_shown(channel),
            remote_addr=remote_addr,
        )
        channel.delete()


def channel_page_path(channel: Channel) -> str:
    if channel.project_id is None:
        return f"/channels/{channel.pk}/"
    return f"/projects/{channel.project.name}/channels/{channel.pk}/"


def channel_send_test(*, actor, channel: Channel, remote_addr: str | None = None) -> Delivery:
    """Queue a test message to the channel through the same path as alerts; its row in the delivery log
    shows the outcome."""
    from alerting.services.delivery import delivery_enqueue

    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel.pk)
        if not channel.enabled:
            raise StateConflict(_("The channel is disabled: enable it before sending a test message."))
        who = actor.get_username() if getattr(actor, "is_authenticated", False) else "OpsPortal"
        delivery = delivery_enqueue(
            channel=channel,
            cause="test",
            title=_("OpsPortal test message"),
            text=_("A test message to the channel %(name)s, sent by %(who)s.")
            % {"name": channel.name, "who": who},
            link=absolute_url(channel_page_path(channel)),
        )
        audit_record(
            actor=actor,
            verb="channel.test",
            target=channel,
            project=channel.project,
            changes={"delivery": delivery.pk},
            remote_addr=remote_addr,
        )
    return delivery
