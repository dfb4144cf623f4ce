"""A project's Apollo settings: owners and ops change them; only ops let owners edit production.

The token is write-only: a blank token keeps the stored one, the audit says that it changed and never
what it is (the audit trail redacts the ``token`` key)."""

from __future__ import annotations

import re

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from configs.models import ApolloSettings, default_namespaces
from observability.services import audit_record, changes_between
from projects.access import Action, check, is_ops
from projects.models import Project

# Apollo's own rule for app ids, clusters and namespaces (InputValidator): letters, digits, _ . -
_NAME = re.compile(r"[0-9A-Za-z_.-]+")
_ENV = re.compile(r"[A-Za-z0-9_-]{1,32}")
_TOKEN = re.compile(r"[A-Za-z0-9_.-]{1,200}")
MAX_NAMESPACES = 20
DEFAULTS = {
    "app_id": "",
    "cluster": "default",
    "test_env": "FAT",
    "prod_env": "PRO",
    "owner_may_edit_prod": False,
}


def settings_shown(row: ApolloSettings | None) -> dict:
    """What may be shown of the settings (the defaults when there are none): everything but the token."""
    if row is None:
        return {**DEFAULTS, "namespaces": default_namespaces()}
    return {
        "app_id": row.app_id,
        "cluster": row.cluster,
        "namespaces": list(row.namespaces),
        "test_env": row.test_env,
        "prod_env": row.prod_env,
        "owner_may_edit_prod": row.owner_may_edit_prod,
    }


def parse_namespaces(value) -> list[str]:
    """A list from the API, or the page's text (one per line, or separated by commas or spaces)."""
    if isinstance(value, str):
        value = re.split(r"[\s,;]+", value)
    return [str(v).strip() for v in value or [] if str(v).strip()]


def _clean(wanted: dict, *, token: str | None, creating: bool, has_token: bool) -> dict:
    errors: dict[str, str] = {}
    app_id = (wanted["app_id"] or "").strip()
    if not app_id:
        errors["app_id"] = _("Give the Apollo app id.")
    elif len(app_id) > 128 or not _NAME.fullmatch(app_id):
        errors["app_id"] = _("Letters, digits, '_', '.' and '-' only, at most 128 characters.")
    cluster = (wanted["cluster"] or "").strip() or "default"
    if len(cluster) > 64 or not _NAME.fullmatch(cluster):
        errors["cluster"] = _("Letters, digits, '_', '.' and '-' only, at most 64 characters.")
    namespaces = list(dict.fromkeys(parse_namespaces(wanted["namespaces"])))
    bad = [n for n in namespaces if len(n) > 128 or not _NAME.fullmatch(n)]
    if not namespaces:
        errors["namespaces"] = _("Give at least one namespace, e.g. application.")
    elif bad:
        errors["namespaces"] = _("Not a namespace name: %(bad)s.") % {"bad": ", ".join(bad[:5])}
    elif len(namespaces) > MAX_NAMESPACES:
        errors["namespaces"] = _("At most %(n)d namespaces.") % {"n": MAX_NAMESPACES}
    envs = {}
    for name in ("test_env", "prod_env"):
        value = (wanted[name] or "").strip().upper()
        if not _ENV.fullmatch(value):
            errors[name] = _("An Apollo environment name such as FAT or PRO.")
        envs[name] = value
    if token and not _TOKEN.fullmatch(token):
        errors["token"] = _("Paste the token as Apollo's Open API page shows it (letters, digits, _ . -).")
    elif creating and not token and not has_token:
        errors["token"] = _("Required: the Open API token of the app's third-party application.")
    if errors:
        raise ValidationError(errors)
    return {
        "app_id": app_id,
        "cluster": cluster,
        "namespaces": namespaces,
        **envs,
        "owner_may_edit_prod": bool(wanted["owner_may_edit_prod"]),
    }


@transaction.atomic
def apollo_settings_update(
    *,
    actor,
    project: Project,
    app_id: str | None = None,
    cluster: str | None = None,
    namespaces: list[str] | str | None = None,
    test_env: str | None = None,
    prod_env: str | None = None,
    token: str | None = None,
    owner_may_edit_prod: bool | None = None,
    remote_addr: str | None = None,
) -> ApolloSettings:
    """Create or change the project's Apollo settings (owner or ops); ``None`` keeps a setting, and a
    blank token keeps the stored one. Only ops may turn ``owner_may_edit_prod`` on (PermissionDenied)."""
    check(actor, Action.EDIT_PROJECT, project)
    Project.objects.select_for_update().get(pk=project.pk)  # one creation at a time
    row = ApolloSettings.objects.select_for_update().filter(project=project).first()
    before = settings_shown(row)
    given = {
        "app_id": app_id,
        "cluster": cluster,
        "namespaces": namespaces,
        "test_env": test_env,
        "prod_env": prod_env,
        "owner_may_edit_prod": owner_may_edit_prod,
    }
    wanted = {name: before[name] if value is None else value for name, value in given.items()}
    token = (token or "").strip()
    after = _clean(wanted, token=token, creating=row is None, has_token=bool(row and row.token))
    if after["owner_may_edit_prod"] and not before["owner_may_edit_prod"] and not is_ops(actor):
        raise PermissionDenied(_("Only ops may let the owners edit the production configuration."))
    changes = dict(after) if row is None else changes_between(before, after)
    if token:
        # The key is redacted by the audit trail: it says the token changed, never what it is.
        changes["token"] = "changed"  # noqa: S105 (a word, not a credential)
    if row is not None and not changes:
        return row
    created = row is None
    if created:
        row = ApolloSettings(project=project)
    for name, value in after.items():
        setattr(row, name, value)
    if token:
        row.token = token
    row.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    row.save()
    audit_record(
        actor=actor,
        verb="apollo.settings.create" if created else "apollo.settings.update",
        target=row,
        project=project,
        changes=changes,
        remote_addr=remote_addr,
    )
    return row


def apollo_settings_has_token(row: ApolloSettings | None) -> bool:
    return bool(row and row.token)
