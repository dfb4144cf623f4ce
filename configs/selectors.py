"""Reading a project's Apollo configuration: its settings, one namespace's items against its latest
release, and the release history the portal knows of. Access goes through ``projects.access.apollo_access``;
secret-looking keys come out masked (``configs.masking``), everywhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.http import Http404
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from configs.diff import KeyChange, config_diff
from configs.errors import ApolloNotConfigured, ConfigError, apollo_error
from configs.masking import is_secret_key, shown_value
from configs.models import ApolloSettings, ConfigRelease
from integrations.apollo.client import ApolloClient, ApolloItem, ApolloRelease, NamespaceRef
from integrations.errors import IntegrationError
from projects.access import apollo_access, get_project
from projects.choices import Environment
from projects.models import Project

HISTORY_LIMIT = 50
_VALUE_SALT = "opsportal.configs.item-value"


def apollo_enabled() -> bool:
    return bool(settings.APOLLO_PORTAL_URL)


def apollo_settings_of(project: Project) -> ApolloSettings | None:
    return ApolloSettings.objects.filter(project=project).first()


@dataclass(frozen=True)
class ApolloTarget:
    """One namespace of a project in one environment, as a user reached it (``may_edit`` there)."""

    project: Project
    settings: ApolloSettings
    environment: str
    namespace: str
    may_edit: bool

    @property
    def ref(self) -> NamespaceRef:
        return namespace_ref(self.settings, self.environment, self.namespace)

    @property
    def where(self) -> str:
        return describe(self.ref)


def namespace_ref(row: ApolloSettings, environment: str, namespace: str) -> NamespaceRef:
    return NamespaceRef(
        env=row.apollo_env(environment), app_id=row.app_id, cluster=row.cluster, namespace=namespace
    )


def describe(ref: NamespaceRef) -> str:
    """How messages name a namespace: env/app/cluster/namespace, as Apollo's portal shows it."""
    return f"{ref.env}/{ref.app_id}/{ref.cluster}/{ref.namespace}"


def apollo_target(*, user, name: str, environment: str, namespace: str, edit: bool = False) -> ApolloTarget:
    """The one way to a namespace. Checked in this order: Http404 when the project is not visible or the
    environment unknown; PermissionDenied when ``edit`` is asked and the user may not change it there;
    Http404 when the project has no Apollo settings or does not list the namespace."""
    project = get_project(user, name=name)
    row = apollo_settings_of(project)
    may_edit = apollo_access(
        user, project, environment, edit=edit, owner_may_edit_prod=bool(row and row.owner_may_edit_prod)
    )
    if row is None:
        raise Http404("This project has no Apollo settings.")
    if namespace not in row.namespaces:
        raise Http404("The project's Apollo settings do not list that namespace.")
    return ApolloTarget(project, row, environment, namespace, may_edit)


def apollo_client(row: ApolloSettings | None) -> ApolloClient:
    """The client for a project's settings, or ApolloNotConfigured saying what to set."""
    if not apollo_enabled():
        raise ApolloNotConfigured(
            _("Apollo is not configured on this portal: set APOLLO_PORTAL_URL (the Apollo portal's address).")
        )
    if row is None:
        raise ApolloNotConfigured(_("This project has no Apollo settings yet."), status=404)
    if not row.token:
        raise ApolloNotConfigured(_("The project's Apollo settings have no Open API token: set one."))
    client = ApolloClient.for_token(row.token)
    if client is None:  # the setting went away between the two looks
        raise ApolloNotConfigured(_("Apollo is not configured on this portal: set APOLLO_PORTAL_URL."))
    return client


# --- items ------------------------------------------------------------------------------------------------


def value_hash(value: str) -> str:
    """A keyed fingerprint of a value: it changes with the value and reveals nothing of a secret."""
    return salted_hmac(_VALUE_SALT, value or "", algorithm="sha256").hexdigest()[:16]


def item_version(item: ApolloItem) -> str:
    """What an edit carries back: the item's last-modified time (milliseconds) and its value's hash, as
    read. A different version on save means someone changed the item meanwhile."""
    stamp = int(item.modified_at.timestamp() * 1000) if item.modified_at else 0
    return f"{stamp}.{value_hash(item.value)}"


@dataclass(frozen=True)
class ItemRow:
    key: str
    value: str  # masked for a secret-looking key
    secret: bool
    comment: str
    modified_by: str
    modified_at: datetime | None
    version: str
    state: str  # "", or the diff's "added" / "changed" since the latest release


def item_row(item: ApolloItem, state: str = "") -> ItemRow:
    return ItemRow(
        key=item.key,
        value=shown_value(item.key, item.value),
        secret=is_secret_key(item.key),
        comment=item.comment,
        modified_by=item.modified_by,
        modified_at=item.modified_at,
        version=item_version(item),
        state=state,
    )


def masked_diff(changes: list[KeyChange]) -> list[KeyChange]:
    return [KeyChange(c.key, c.kind, shown_value(c.key, c.old), shown_value(c.key, c.new)) for c in changes]


# --- releases ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryRow:
    release_id: int
    title: str
    comment: str
    released_by: str
    released_at: datetime | None
    by_portal: bool
    state: str  # "current", "active" (an earlier release still there to go back to) or "rolled_back"
    rolled_back_by: str = ""
    rolled_back_at: datetime | None = None
    # Rolling back to this release (None for the current one: "undo it") undoes this many releases.
    undo_count: int = 0


def known_releases(row: ApolloSettings, environment: str, namespace: str):
    return ConfigRelease.objects.filter(
        project_id=row.project_id,
        environment=environment,
        apollo_env=row.apollo_env(environment),
        app_id=row.app_id,
        cluster=row.cluster,
        namespace=namespace,
    )


def undo_count(known: list[ConfigRelease], latest: ApolloRelease, target_id: int | None) -> int:
    """How many rollbacks make ``target_id`` current again (None: undo the latest only). Apollo's
    rollback undoes its latest active release; the releases in between are the known ones still active,
    plus the latest when the portal did not know it."""
    if target_id is None:
        return 1
    between = {
        r.release_id for r in known if r.rolled_back_at is None and target_id < r.release_id <= latest.id
    }
    between.add(latest.id)
    return len(between)


def release_history(row: ApolloSettings, environment: str, namespace: str, latest: ApolloRelease | None):
    known = list(known_releases(row, environment, namespace).order_by("-release_id")[:HISTORY_LIMIT])
    rows: list[HistoryRow] = []
    if latest is not None and all(r.release_id != latest.id for r in known):
        rows.append(
            HistoryRow(
                release_id=latest.id,
                title=latest.name,
                comment=latest.comment,
                released_by=latest.released_by,
                released_at=latest.released_at,
                by_portal=False,
                state="current",
                undo_count=1,
            )
        )
    for r in known:
        if latest is not None and r.release_id == latest.id:
            state, count = "current", 1
        elif r.rolled_back_at is not None or latest is None or r.release_id > latest.id:
            # Newer than Apollo's latest active release: rolled back, through the portal or not.
            state, count = "rolled_back", 0
        else:
            state, count = "active", undo_count(known, latest, r.release_id)
        rows.append(
            HistoryRow(
                release_id=r.release_id,
                title=r.title,
                comment=r.comment,
                released_by=r.released_by,
                released_at=r.released_at,
                by_portal=r.by_portal,
                state=state,
                rolled_back_by=r.rolled_back_by,
                rolled_back_at=r.rolled_back_at,
                undo_count=count,
            )
        )
    rows.sort(key=lambda h: -h.release_id)
    return rows


# --- one namespace ----------------------------------------------------------------------------------------


@dataclass
class NamespaceView:
    target: ApolloTarget
    format: str = "properties"
    comment: str = ""
    items: list[ItemRow] = field(default_factory=list)
    diff: list[KeyChange] = field(default_factory=list)  # masked
    latest: ApolloRelease | None = None
    history: list[HistoryRow] = field(default_factory=list)
    error: ConfigError | None = None  # why Apollo could not be read (the page still shows what it can)

    @property
    def current_release_id(self) -> int | None:
        return self.latest.id if self.latest is not None else None


def namespace_read(target: ApolloTarget) -> NamespaceView:
    """Items (masked), the diff against the latest release and the history. Apollo's refusal or silence
    is kept in ``error`` (with the history the portal knows), never raised."""
    view = NamespaceView(target=target)
    try:
        client = apollo_client(target.settings)
        namespace = client.namespace_get(ref=target.ref)
        latest = client.release_latest(ref=target.ref)
    except ConfigError as exc:
        view.error = exc
        view.history = release_history(target.settings, target.environment, target.namespace, None)
        return view
    except IntegrationError as exc:
        view.error = apollo_error(exc, where=target.where)
        view.history = release_history(target.settings, target.environment, target.namespace, None)
        return view
    current = {item.key: item.value for item in namespace.items if item.key}
    changes = config_diff(current, latest.configurations if latest is not None else None)
    kinds = {c.key: c.kind for c in changes}
    view.format = namespace.format
    view.comment = namespace.comment
    view.items = [item_row(item, kinds.get(item.key, "")) for item in namespace.items if item.key]
    view.diff = masked_diff(changes)
    view.latest = latest
    view.history = release_history(target.settings, target.environment, target.namespace, latest)
    return view


def config_release_current(*, project: Project, env: str, namespace: str) -> int | None:
    """The id of the namespace's latest active Apollo release in the project's ``env`` (test/prod), or
    None when it was never released. For other code (a release that records the config it ran with);
    raises ConfigError when Apollo is not set up or refuses."""
    if env not in Environment.values:
        raise ValueError(f"unknown environment {env!r}")
    row = apollo_settings_of(project)
    client = apollo_client(row)
    ref = namespace_ref(row, env, namespace)
    try:
        latest = client.release_latest(ref=ref)
    except IntegrationError as exc:
        raise apollo_error(exc, where=describe(ref)) from exc
    return latest.id if latest is not None else None


@dataclass(frozen=True)
class EnvironmentSummary:
    environment: str
    label: str
    apollo_env: str
    may_edit: bool


def apollo_overview(*, user, name: str) -> tuple[Project, ApolloSettings | None, list[EnvironmentSummary]]:
    """The project's Apollo page: its settings (None when it has none) and, per environment, where it
    points and whether the user may change it. Http404 for someone who may not see the project."""
    project = get_project(user, name=name)
    row = apollo_settings_of(project)
    flag = bool(row and row.owner_may_edit_prod)
    summaries = [
        EnvironmentSummary(
            environment=env.value,
            label=env.label,
            apollo_env=row.apollo_env(env.value) if row else "",
            may_edit=apollo_access(user, project, env.value, owner_may_edit_prod=flag),
        )
        for env in Environment
    ]
    return project, row, summaries
