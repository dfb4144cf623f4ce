"""Changing a project's namespace in Apollo: items, releases, rollbacks, and a change set applied and
released in one go (for releases that carry configuration).

Every Apollo call names the portal user as its operator (``dataChangeLastModifiedBy``, ``releasedBy``,
``operator``). Each call runs with the project's Apollo settings row locked, so two portal users never
interleave on one project; each step that Apollo did is audited in the transaction, and a step that
failed leaves the steps before it recorded and is reported, never hidden. Apollo has no conditional
write, so an edit re-reads the item first and refuses when it moved since the editor read it (someone
in Apollo's own portal can still write between that read and ours: the window is one round trip).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from configs.errors import ApolloNotConfigured, ConfigError, ConfigIncomplete, apollo_error
from configs.masking import MASK, is_secret_key
from configs.models import ApolloSettings, ConfigRelease
from configs.selectors import (
    apollo_client,
    describe,
    item_version,
    known_releases,
    namespace_ref,
    undo_count,
)
from integrations.apollo.client import ApolloClient, ApolloItem, ApolloRelease, NamespaceRef
from integrations.errors import IntegrationError, NotFound
from observability.services import audit_record
from opsportal.errors import StateConflict
from projects.access import apollo_access
from projects.choices import Environment
from projects.models import Project

# Apollo's limits (ItemController, ReleaseController): longer input is its 400.
MAX_KEY = 128
MAX_VALUE = 20000
MAX_COMMENT = 256
MAX_TITLE = 64
MAX_RELEASE_COMMENT = 256
MAX_ROLLBACK_STEPS = 20
AUDIT_VALUE_CHARS = 200
SHOWN_VALUE_CHARS = 60


@dataclass(frozen=True)
class ConfigChange:
    """One change of a change set: set ``key`` to ``value`` (created when missing), or delete it (None)."""

    key: str
    value: str | None
    comment: str = ""


@dataclass(frozen=True)
class RollbackResult:
    undone: list[int]  # the release ids rolled back, in order
    current: ApolloRelease | None  # Apollo's latest active release afterwards (None if unread)
    target_id: int | None


def _operator(user) -> str:
    return user.get_username()


def _audit_value(key: str, value: str | None) -> str | None:
    if value is None:
        return None
    if is_secret_key(key):
        return MASK
    return value if len(value) <= AUDIT_VALUE_CHARS else value[: AUDIT_VALUE_CHARS - 1] + "…"


def _where(ref: NamespaceRef, environment: str) -> dict:
    return {
        "environment": environment,
        "apollo_env": ref.env,
        "app_id": ref.app_id,
        "cluster": ref.cluster,
        "namespace": ref.namespace,
    }


def _open(
    *, project: Project, environment: str, namespace: str, actor, check_access: bool = True
) -> tuple[ApolloSettings, NamespaceRef, ApolloClient]:
    """Lock the project's Apollo settings (inside the caller's transaction), check the actor may change
    ``environment``, and return the settings, the namespace and a client."""
    if environment not in Environment.values:
        raise ValidationError({"environment": _("Choose test or prod.")})
    row = ApolloSettings.objects.select_for_update().filter(project=project).first()
    if check_access:
        apollo_access(
            actor,
            project,
            environment,
            edit=True,
            owner_may_edit_prod=bool(row and row.owner_may_edit_prod),
        )
    if row is None:
        raise ApolloNotConfigured(_("This project has no Apollo settings yet."), status=404)
    if namespace not in row.namespaces:
        raise ConfigError(
            _("The project's Apollo settings do not list the namespace %(namespace)s.")
            % {"namespace": namespace},
            status=404,
        )
    return row, namespace_ref(row, environment, namespace), apollo_client(row)


def _clean_item(key: str, value: str | None, comment: str | None) -> tuple[str, str | None, str | None]:
    errors = {}
    key = (key or "").strip()
    if not key:
        errors["key"] = _("Give the key.")
    elif len(key) > MAX_KEY:
        errors["key"] = _("At most %(n)d characters.") % {"n": MAX_KEY}
    elif any(ord(c) < 32 for c in key):
        errors["key"] = _("A key is one line, without control characters.")
    if value is not None and len(value) > MAX_VALUE:
        errors["value"] = _("At most %(n)d characters.") % {"n": MAX_VALUE}
    if comment is not None and len(comment) > MAX_COMMENT:
        errors["comment"] = _("At most %(n)d characters.") % {"n": MAX_COMMENT}
    if errors:
        raise ValidationError(errors)
    return key, value, comment


def _shown(value: str) -> str:
    return value if len(value) <= SHOWN_VALUE_CHARS else value[: SHOWN_VALUE_CHARS - 1] + "…"


def _stale(current: ApolloItem) -> str:
    """Why an edit made on an older read was refused: who changed the item, when, and (unless it is a
    secret) to what."""
    when = (
        timezone.localtime(current.modified_at).strftime("%Y-%m-%d %H:%M:%S") if current.modified_at else "?"
    )
    text = _("%(key)s was changed by %(who)s at %(when)s, after you loaded it.") % {
        "key": current.key,
        "who": current.modified_by or "?",
        "when": when,
    }
    if not is_secret_key(current.key):
        text += " " + _("Its value is now: %(value)s.") % {"value": _shown(current.value)}
    return text + " " + _("Nothing was saved: reload the page and make your edit again.")


def _deleted_meanwhile(key: str) -> str:
    return _("%(key)s was deleted from Apollo after you loaded it. Nothing was saved: reload the page.") % {
        "key": key
    }


def _read_for_edit(client: ApolloClient, ref: NamespaceRef, key: str, version: str | None) -> ApolloItem:
    """The item as Apollo holds it now, refused (StateConflict) when it moved since ``version``."""
    try:
        current = client.item_get(ref=ref, key=key)
    except NotFound as exc:
        if version:
            raise StateConflict(_deleted_meanwhile(key)) from exc
        raise ConfigError(
            _("There is no key %(key)s in %(where)s.") % {"key": key, "where": describe(ref)}, status=404
        ) from exc
    except IntegrationError as exc:
        raise apollo_error(exc, where=describe(ref)) from exc
    if version and item_version(current) != version:
        raise StateConflict(_stale(current))
    return current


def config_item_create(
    *,
    actor,
    project: Project,
    environment: str,
    namespace: str,
    key: str,
    value: str,
    comment: str = "",
    remote_addr: str | None = None,
) -> ApolloItem:
    """Add a key (Apollo refuses an existing one: 409 with a message)."""
    key, value, comment = _clean_item(key, value or "", comment or "")
    with transaction.atomic():
        row, ref, client = _open(project=project, environment=environment, namespace=namespace, actor=actor)
        try:
            item = client.item_create(
                ref=ref, key=key, value=value, comment=comment, operator=_operator(actor)
            )
        except IntegrationError as exc:
            raise apollo_error(exc, where=describe(ref)) from exc
        audit_record(
            actor=actor,
            verb="apollo.item.create",
            target=row,
            project=project,
            changes={
                **_where(ref, environment),
                "key": key,
                "value": [None, _audit_value(key, value)],
                "comment": comment,
            },
            remote_addr=remote_addr,
        )
    return item


def config_item_update(
    *,
    actor,
    project: Project,
    environment: str,
    namespace: str,
    key: str,
    value: str | None,
    comment: str | None = None,
    version: str | None = None,
    remote_addr: str | None = None,
) -> ApolloItem:
    """Change a key's value and comment (``None`` keeps either: how a secret is re-commented without
    being read). With ``version`` (``selectors.item_version`` as the editor read it) a key changed or
    deleted since is refused with StateConflict naming who changed it; nothing is written then."""
    key, value, comment = _clean_item(key, value, comment)
    with transaction.atomic():
        row, ref, client = _open(project=project, environment=environment, namespace=namespace, actor=actor)
        current = _read_for_edit(client, ref, key, version)
        new_value = current.value if value is None else value
        new_comment = current.comment if comment is None else comment
        operator = _operator(actor)
        try:
            client.item_update(ref=ref, key=key, value=new_value, comment=new_comment, operator=operator)
        except IntegrationError as exc:
            raise apollo_error(exc, where=describe(ref)) from exc
        changes = {**_where(ref, environment), "key": key}
        if new_value != current.value:
            changes["value"] = [_audit_value(key, current.value), _audit_value(key, new_value)]
        if new_comment != current.comment:
            changes["comment"] = [current.comment, new_comment]
        audit_record(
            actor=actor,
            verb="apollo.item.update",
            target=row,
            project=project,
            changes=changes,
            remote_addr=remote_addr,
        )
    try:
        return client.item_get(ref=ref, key=key)
    except IntegrationError:  # written and audited: a failed re-read is no reason to say otherwise
        return ApolloItem(
            key=key,
            value=new_value,
            comment=new_comment,
            created_by=current.created_by,
            modified_by=operator,
            created_at=current.created_at,
            modified_at=None,
        )


def config_item_delete(
    *,
    actor,
    project: Project,
    environment: str,
    namespace: str,
    key: str,
    version: str | None = None,
    remote_addr: str | None = None,
) -> None:
    """Delete a key; with ``version``, refused when it changed since it was read (as an edit is)."""
    key, _value, _comment = _clean_item(key, None, None)
    with transaction.atomic():
        row, ref, client = _open(project=project, environment=environment, namespace=namespace, actor=actor)
        current = _read_for_edit(client, ref, key, version)
        try:
            client.item_delete(ref=ref, key=key, operator=_operator(actor))
        except IntegrationError as exc:
            raise apollo_error(exc, where=describe(ref)) from exc
        audit_record(
            actor=actor,
            verb="apollo.item.delete",
            target=row,
            project=project,
            changes={
                **_where(ref, environment),
                "key": key,
                "value": [_audit_value(key, current.value), None],
            },
            remote_addr=remote_addr,
        )


def _record_release(
    row: ApolloSettings,
    environment: str,
    ref: NamespaceRef,
    release: ApolloRelease,
    *,
    by_portal: bool,
    by: str,
) -> ConfigRelease:
    record, _created = ConfigRelease.objects.get_or_create(
        project=row.project,
        apollo_env=ref.env,
        app_id=ref.app_id,
        cluster=ref.cluster,
        namespace=ref.namespace,
        release_id=release.id,
        defaults={
            "environment": environment,
            "title": (release.name or "")[:MAX_TITLE],
            "comment": (release.comment or "")[:MAX_RELEASE_COMMENT],
            "released_by": release.released_by or by,
            "released_at": release.released_at or timezone.now(),
            "by_portal": by_portal,
        },
    )
    return record


def _record_rolled_back(
    row: ApolloSettings,
    environment: str,
    ref: NamespaceRef,
    release: ApolloRelease,
    *,
    operator: str,
    actor,
    project: Project,
    changes: dict,
    remote_addr: str | None = None,
) -> None:
    """Mark ``release`` (just rolled back in Apollo by ``operator``) as rolled back here, audited."""
    record = _record_release(row, environment, ref, release, by_portal=False, by=release.released_by)
    record.rolled_back_at, record.rolled_back_by = timezone.now(), operator
    record.save(update_fields=["rolled_back_at", "rolled_back_by"])
    audit_record(
        actor=actor,
        verb="apollo.rollback",
        target=record,
        project=project,
        changes={**_where(ref, environment), "release_id": release.id, "title": release.name, **changes},
        remote_addr=remote_addr,
    )


def _clean_release(title: str, comment: str) -> tuple[str, str]:
    title, comment = (title or "").strip(), (comment or "").strip()
    errors = {}
    if not title:
        errors["title"] = _("Give the release a title.")
    elif len(title) > MAX_TITLE:
        errors["title"] = _("At most %(n)d characters.") % {"n": MAX_TITLE}
    if len(comment) > MAX_RELEASE_COMMENT:
        errors["comment"] = _("At most %(n)d characters.") % {"n": MAX_RELEASE_COMMENT}
    if errors:
        raise ValidationError(errors)
    return title, comment


def _release(
    *, actor, row, environment, ref, client, title, comment, remote_addr, changes: dict | None = None
) -> ConfigRelease:
    operator = _operator(actor)
    try:
        release = client.release_create(ref=ref, title=title, comment=comment, operator=operator)
    except IntegrationError as exc:
        raise apollo_error(exc, where=describe(ref)) from exc
    record = _record_release(row, environment, ref, release, by_portal=True, by=operator)
    audit_record(
        actor=actor,
        verb="apollo.release",
        target=record,
        project=row.project,
        changes={
            **_where(ref, environment),
            "release_id": release.id,
            "title": title,
            "comment": comment,
            "keys": len(release.configurations),
            **(changes or {}),
        },
        remote_addr=remote_addr,
    )
    return record


def config_release(
    *,
    actor,
    project: Project,
    environment: str,
    namespace: str,
    title: str,
    comment: str = "",
    remote_addr: str | None = None,
) -> ConfigRelease:
    """Release the namespace as it is now; the portal keeps the release (Apollo lists only the latest)."""
    title, comment = _clean_release(title, comment)
    with transaction.atomic():
        row, ref, client = _open(project=project, environment=environment, namespace=namespace, actor=actor)
        return _release(
            actor=actor,
            row=row,
            environment=environment,
            ref=ref,
            client=client,
            title=title,
            comment=comment,
            remote_addr=remote_addr,
        )


def config_rollback(
    *,
    actor,
    project: Project,
    environment: str,
    namespace: str,
    to_release_id: int | None,
    current_release_id: int,
    count: int,
    remote_addr: str | None = None,
) -> RollbackResult:
    """Make ``to_release_id`` current again (None: undo the current release only) by rolling back
    Apollo's latest active release ``count`` times, as confirmed: Apollo's Open API rollback only undoes
    the latest. Refused before anything is done (StateConflict) when the current release is no longer
    ``current_release_id`` or the number of releases to undo is no longer ``count``. A step that fails
    after others succeeded raises ConfigIncomplete, the steps done being audited and recorded."""
    if not 1 <= count <= MAX_ROLLBACK_STEPS:
        raise ValidationError({"count": _("Between 1 and %(n)d releases.") % {"n": MAX_ROLLBACK_STEPS}})
    if to_release_id is None and count != 1:
        raise ValidationError({"count": _("Undoing the current release undoes exactly one.")})
    operator = _operator(actor)
    undone: list[int] = []
    failure: ConfigError | None = None
    with transaction.atomic():
        row, ref, client = _open(project=project, environment=environment, namespace=namespace, actor=actor)
        where = describe(ref)
        try:
            latest = client.release_latest(ref=ref)
        except IntegrationError as exc:
            raise apollo_error(exc, where=where) from exc
        if latest is None:
            raise StateConflict(
                _("%(where)s was never released: there is nothing to roll back.") % {"where": where}
            )
        if latest.id != current_release_id:
            raise StateConflict(
                _(
                    "The current release of %(where)s is now #%(id)s “%(title)s” by %(who)s, not #%(seen)s: "
                    "nothing was rolled back. Reload the page and confirm again."
                )
                % {
                    "where": where,
                    "id": latest.id,
                    "title": latest.name,
                    "who": latest.released_by,
                    "seen": current_release_id,
                }
            )
        known = list(known_releases(row, environment, namespace))
        # Releases newer than Apollo's latest active one were rolled back elsewhere (Apollo's own portal).
        now = timezone.now()
        for stale in [r for r in known if r.rolled_back_at is None and r.release_id > latest.id]:
            stale.rolled_back_at, stale.rolled_back_by = now, ""
            stale.save(update_fields=["rolled_back_at", "rolled_back_by"])
        if to_release_id is not None:
            if to_release_id >= latest.id:
                raise ValidationError(
                    {
                        "to_release": _("Release #%(id)s is not older than the current one.")
                        % {"id": to_release_id}
                    }
                )
            needed = undo_count(known, latest, to_release_id)
            if needed != count:
                raise StateConflict(
                    _(
                        "Going back to #%(id)s now undoes %(needed)d releases, not the %(count)d you "
                        "confirmed: nothing was rolled back. Reload the page and confirm again."
                    )
                    % {"id": to_release_id, "needed": needed, "count": count}
                )
        current: ApolloRelease | None = latest
        for step in range(count):
            if current is None or (to_release_id is not None and current.id <= to_release_id):
                break
            try:
                client.release_rollback(env=ref.env, release_id=current.id, operator=operator)
            except IntegrationError as exc:
                failure = apollo_error(exc, where=where)
                if not undone:
                    raise failure from exc
                break
            _record_rolled_back(
                row,
                environment,
                ref,
                current,
                operator=operator,
                actor=actor,
                project=project,
                changes={"to_release_id": to_release_id, "step": f"{step + 1}/{count}"},
                remote_addr=remote_addr,
            )
            undone.append(current.id)
            try:
                current = client.release_latest(ref=ref)
            except IntegrationError as exc:
                current = None
                if len(undone) < count:  # unread after the last step is no reason to call it unfinished
                    failure = apollo_error(exc, where=where)
                break
    result = RollbackResult(undone=undone, current=current, target_id=to_release_id)
    reached = (
        to_release_id is None
        or (current is not None and current.id == to_release_id)
        or (current is None and failure is None)
    )
    if failure is not None or not reached:
        done = _("Rolled back %(n)d of %(count)d releases (%(ids)s).") % {
            "n": len(undone),
            "count": count,
            "ids": ", ".join(f"#{i}" for i in undone) or "—",
        }
        if failure is not None:
            text = _("%(done)s Then: %(cause)s") % {"done": done, "cause": failure}
        else:
            text = (
                done
                + " "
                + _(
                    "The current release is now #%(id)s, not #%(target)s: releases made outside the portal "
                    "lie between. Reload the page to roll back further."
                )
                % {"id": current.id if current else "?", "target": to_release_id}
            )
        raise ConfigIncomplete(text)
    return result


def config_changes_apply(
    *,
    project: Project,
    env: str,
    namespace: str,
    changes: list[ConfigChange],
    operator,
    title: str,
    comment: str = "",
    remote_addr: str | None = None,
) -> int:
    """Apply a reviewed change set to the namespace of the project's ``env`` and release it; the Apollo
    release id. For workflows that carry configuration (a release, a promotion): the caller decides who
    may, so no Apollo right is checked here; ``operator`` (a user) is named in Apollo and the audit.

    Keys are set with create-if-missing and deleted when their value is None (a key already gone is
    fine), so applying the same set twice gives the same namespace. A failure after some changes raises
    ConfigIncomplete saying how far it got; those changes stay audited."""
    title, comment = _clean_release(title, comment)
    cleaned = [ConfigChange(*_clean_item(c.key, c.value, c.comment or "")) for c in changes]
    done: list[str] = []
    failure: ConfigError | None = None
    record = None
    with transaction.atomic():
        row, ref, client = _open(
            project=project, environment=env, namespace=namespace, actor=operator, check_access=False
        )
        where = describe(ref)
        name = _operator(operator)
        for change in cleaned:
            try:
                if change.value is None:
                    try:
                        client.item_delete(ref=ref, key=change.key, operator=name)
                    except NotFound:
                        continue  # already absent: nothing changed, nothing to audit
                else:
                    client.item_update(
                        ref=ref,
                        key=change.key,
                        value=change.value,
                        comment=change.comment,
                        operator=name,
                        create_if_missing=True,
                    )
            except IntegrationError as exc:
                failure = apollo_error(exc, where=where)
                if not done:
                    raise failure from exc
                break
            done.append(change.key)
            audit_record(
                actor=operator,
                verb="apollo.item.delete" if change.value is None else "apollo.item.update",
                target=row,
                project=project,
                changes={
                    **_where(ref, env),
                    "key": change.key,
                    "value": _audit_value(change.key, change.value),
                    "comment": change.comment,
                    "change_set": title,
                },
                remote_addr=remote_addr,
            )
        if failure is None:
            try:
                record = _release(
                    actor=operator,
                    row=row,
                    environment=env,
                    ref=ref,
                    client=client,
                    title=title,
                    comment=comment,
                    remote_addr=remote_addr,
                    changes={"change_set_keys": len(cleaned)},
                )
            except ConfigError as exc:
                failure = exc
                if not done:
                    raise
    if failure is not None:
        raise ConfigIncomplete(
            _("Applied %(n)d of %(count)d changes to %(where)s and did not release them. Then: %(cause)s")
            % {"n": len(done), "count": len(cleaned), "where": where, "cause": failure},
            status=failure.status,
        )
    return record.release_id


def config_change_set_clean(*, project: Project, env: str, items: list) -> list[dict]:
    """A release's change set checked against the project's Apollo settings and Apollo's limits: a list
    of {namespace, key, value (None: delete), comment}, or ValidationError saying what is wrong (under
    ``config_changes``). Nothing is read from Apollo: the set is applied later, by the release."""
    if not items:
        return []
    row = ApolloSettings.objects.filter(project=project).first()
    if row is None:
        raise ValidationError(
            {"config_changes": _("The project has no Apollo settings: a release cannot carry configuration.")}
        )
    if env not in Environment.values:
        raise ValidationError({"environment": _("Choose test or prod.")})
    cleaned: list[dict] = []
    seen: set[tuple[str, str]] = set()
    problems: list[str] = []
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            problems.append(_("Change %(n)d is not an object.") % {"n": number})
            continue
        namespace = str(item.get("namespace") or "application")
        delete = bool(item.get("delete"))
        value = item.get("value")
        if namespace not in row.namespaces:
            problems.append(
                _("Change %(n)d: the project's Apollo settings do not list the namespace %(namespace)s.")
                % {"n": number, "namespace": namespace[:128]}
            )
            continue
        if not delete and not isinstance(value, str):
            problems.append(_("Change %(n)d: give a value (a string), or delete the key.") % {"n": number})
            continue
        try:
            key, value, comment = _clean_item(
                str(item.get("key") or ""), None if delete else value, str(item.get("comment") or "")
            )
        except ValidationError as exc:
            problems.extend(
                _("Change %(n)d (%(field)s): %(error)s") % {"n": number, "field": field, "error": " ".join(e)}
                for field, e in exc.message_dict.items()
            )
            continue
        if (namespace, key) in seen:
            problems.append(
                _("Change %(n)d: %(key)s appears twice in %(namespace)s.")
                % {"n": number, "key": key, "namespace": namespace}
            )
            continue
        seen.add((namespace, key))
        cleaned.append({"namespace": namespace, "key": key, "value": value, "comment": comment})
    if problems:
        raise ValidationError({"config_changes": problems})
    return cleaned


def config_release_restore(
    *, project: Project, env: str, namespace: str, to_release_id: int, operator, reason: str
) -> list[int]:
    """Make ``to_release_id`` the namespace's current release again by rolling back Apollo's latest
    releases one by one (Apollo undoes only its latest); the ids undone (empty: it was current). For a
    workflow's rollback (a release rolled back, or a failed one undone): no Apollo right is checked.

    Refused with nothing done (ConfigError) when the portal knows the target was rolled back or when
    Apollo's latest is older than it. When the chain passes the target (abandoned or superseded outside
    the portal) or a step fails, ConfigIncomplete says how far it got; the steps done stay audited."""
    name = _operator(operator)
    undone: list[int] = []
    failure: ConfigError | None = None
    with transaction.atomic():
        row, ref, client = _open(
            project=project, environment=env, namespace=namespace, actor=operator, check_access=False
        )
        where = describe(ref)
        gone = known_releases(row, env, namespace).filter(
            release_id=to_release_id, rolled_back_at__isnull=False
        )
        if gone.exists():
            raise ConfigError(
                _("Apollo release #%(id)s of %(where)s was rolled back: it cannot be made current again.")
                % {"id": to_release_id, "where": where}
            )
        for step in range(MAX_ROLLBACK_STEPS + 1):
            try:
                latest = client.release_latest(ref=ref)
            except IntegrationError as exc:
                failure = apollo_error(exc, where=where)
                break
            if latest is not None and latest.id == to_release_id:
                return undone
            if latest is None or latest.id < to_release_id:
                failure = ConfigError(
                    _(
                        "Apollo release #%(id)s of %(where)s is no longer active (abandoned or rolled back "
                        "outside the portal); the current one is %(current)s."
                    )
                    % {
                        "id": to_release_id,
                        "where": where,
                        "current": f"#{latest.id}" if latest else _("none"),
                    }
                )
                break
            if step == MAX_ROLLBACK_STEPS:
                failure = ConfigError(_("More than %(n)d releases lie between.") % {"n": MAX_ROLLBACK_STEPS})
                break
            try:
                client.release_rollback(env=ref.env, release_id=latest.id, operator=name)
            except IntegrationError as exc:
                failure = apollo_error(exc, where=where)
                break
            _record_rolled_back(
                row,
                env,
                ref,
                latest,
                operator=name,
                actor=operator,
                project=project,
                changes={"to_release_id": to_release_id, "reason": reason[:200]},
            )
            undone.append(latest.id)
    if not undone:
        raise failure
    raise ConfigIncomplete(
        _("Rolled back %(ids)s of %(where)s towards #%(id)s, then: %(cause)s")
        % {"ids": ", ".join(f"#{i}" for i in undone), "where": where, "id": to_release_id, "cause": failure},
        status=failure.status,
    )
