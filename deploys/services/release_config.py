"""The Apollo half of a release: the change set a release carries, applied before its image, recorded,
and undone or restored with it.

Order: the configuration first, the image second. A config step that fails fails the release before the
Deployment is touched; an image rollout that fails after the config was released rolls that Apollo
release back, and when even that fails the release's error says which Apollo release is still current.
A rollback restores the configuration first too: if it cannot, the image stays as it is.
"""

from __future__ import annotations

import json
import logging

from django.utils.translation import gettext as _

from configs.errors import ConfigError
from configs.masking import shown_value
from configs.models import ConfigRelease
from configs.selectors import apollo_settings_of
from configs.services import (
    ConfigChange,
    config_changes_apply,
    config_release_current,
    config_release_restore,
)
from deploys.models import DeploymentRecord, Release

logger = logging.getLogger(__name__)


def change_set(release: Release) -> list[dict]:
    """The release's change set as stored (values in clear: only for applying it)."""
    return json.loads(release.config_changes) if release.config_changes else []


def change_set_shown(release: Release) -> list[dict]:
    """The change set as people may see it: secret-looking keys' values masked."""
    return [
        {**item, "value": shown_value(item["key"], item["value"]), "delete": item["value"] is None}
        for item in change_set(release)
    ]


def _by_namespace(items: list[dict]) -> dict[str, list[ConfigChange]]:
    grouped: dict[str, list[ConfigChange]] = {}
    for item in items:
        grouped.setdefault(item["namespace"], []).append(
            ConfigChange(key=item["key"], value=item["value"], comment=item.get("comment") or "")
        )
    return grouped


def _save(release: Release, **fields) -> None:
    # Committed at once (the deploy step holds no transaction here): a worker killed after Apollo
    # answered still leaves "before" behind for the resumed step.
    for name, value in fields.items():
        setattr(release, name, value)
    Release.objects.filter(pk=release.pk).update(**fields)


def _ours(release: Release, namespace: str, release_id: int | None) -> bool:
    """Whether Apollo's current release of ``namespace`` is the one this release's change set made."""
    return (
        release_id is not None
        and ConfigRelease.objects.filter(
            project_id=release.project_id,
            environment=release.environment,
            namespace=namespace,
            release_id=release_id,
            title=release.version[:64],
            by_portal=True,
        ).exists()
    )


def config_apply(release: Release) -> str:
    """Apply the release's change set (once) and record the Apollo release ids it runs with; the cause
    when it failed ("" when done)."""
    items = change_set(release)
    row = apollo_settings_of(release.project)
    if row is None:
        if items:
            return _("The release carries configuration, but the project has no Apollo settings any more.")
        return ""
    applied = {ns: dict(state) for ns, state in (release.config_applied or {}).items()}
    try:
        for namespace, changes in _by_namespace(items).items():
            state = applied.setdefault(namespace, {})
            if "after" in state:
                continue
            current = config_release_current(
                project=release.project, env=release.environment, namespace=namespace
            )
            if "before" in state and current != state["before"] and _ours(release, namespace, current):
                state["after"] = current  # the last attempt released, then lost its worker
                _save(release, config_applied=applied)
                continue
            if "before" not in state:
                state["before"] = current
                _save(release, config_applied=applied)
            state["after"] = config_changes_apply(
                project=release.project,
                env=release.environment,
                namespace=namespace,
                changes=changes,
                operator=release.created_by,
                title=release.version,
                comment=(release.description or _("Release %(v)s") % {"v": release.version})[:256],
            )
            _save(release, config_applied=applied)
        ran_with = {
            namespace: config_release_current(
                project=release.project, env=release.environment, namespace=namespace
            )
            for namespace in row.namespaces
        }
    except ConfigError as exc:
        if not items:
            # Nothing to apply: Apollo being unreachable is no reason to hold the image back, but the
            # release then has no record of its configuration, and says so in the log.
            logger.warning("release %s: Apollo release ids not recorded: %s", release.pk, exc)
            return ""
        return _("Configuration: %(cause)s The image was not switched.") % {"cause": exc}
    _save(release, config_releases=ran_with)
    return ""


def config_undo(release: Release) -> str:
    """After a failed image rollout: roll back the Apollo releases this release made. A sentence for the
    release's error saying what happened to the configuration ("" when it carried none)."""
    sentences = []
    for namespace, state in (release.config_applied or {}).items():
        after, before = state.get("after"), state.get("before")
        if after is None:
            continue
        if before is None:
            sentences.append(
                _(
                    "Apollo release #%(id)s of %(ns)s is still current: the namespace had no release before "
                    "to go back to, and the image is the old one."
                )
                % {"id": after, "ns": namespace}
            )
            continue
        try:
            config_release_restore(
                project=release.project,
                env=release.environment,
                namespace=namespace,
                to_release_id=before,
                operator=release.created_by,
                reason=_("release %(v)s failed") % {"v": release.version},
            )
        except ConfigError as exc:
            sentences.append(
                _(
                    "Apollo release #%(id)s of %(ns)s is still current and the image is the old one: "
                    "rolling the configuration back failed: %(cause)s"
                )
                % {"id": after, "ns": namespace, "cause": exc}
            )
        else:
            sentences.append(
                _("The configuration of %(ns)s was rolled back to Apollo release #%(id)s.")
                % {"ns": namespace, "id": before}
            )
    return " ".join(sentences)


def config_restore(record: DeploymentRecord) -> str:
    """Before a rollback's image: make current again the Apollo releases its target release ran with.
    The cause when one cannot be ("" when done or when the target recorded none)."""
    target = record.release
    row = apollo_settings_of(record.project)
    listed = set(row.namespaces) if row is not None else set()
    for namespace, release_id in (target.config_releases or {}).items():
        if namespace not in listed:
            continue  # no longer the project's: nothing the portal may restore there
        if release_id is None:
            current = _current_or_none(record, namespace)
            if current is None:
                continue
            return _(
                "Configuration: %(ns)s had no Apollo release when %(v)s ran; Apollo release #%(id)s cannot "
                "be undone to nothing. The image was not switched."
            ) % {"ns": namespace, "v": target.version, "id": current}
        try:
            config_release_restore(
                project=record.project,
                env=record.environment,
                namespace=namespace,
                to_release_id=release_id,
                operator=record.actor,
                reason=_("rollback to %(v)s") % {"v": target.version},
            )
        except ConfigError as exc:
            return _("Configuration: %(cause)s The image was not switched.") % {"cause": exc}
    return ""


def _current_or_none(record: DeploymentRecord, namespace: str) -> int | None:
    try:
        return config_release_current(project=record.project, env=record.environment, namespace=namespace)
    except ConfigError:
        return None
