"""What approving a ticket would do: the rendered objects as YAML, and for objects that already exist
a diff between the live object and what the apiserver says it would become (server-side dry run)."""

import difflib
from dataclasses import dataclass, field

import yaml
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from clusters.models import Cluster, ProjectEnvironment
from clusters.workload import manifests, secret_env
from deploys import services
from deploys.models import OnboardingTicket
from integrations.errors import IntegrationError

# Fields the apiserver owns; they differ on every read and would drown the real changes.
_VOLATILE_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
)


@dataclass
class ObjectPreview:
    kind: str
    name: str
    yaml: str
    exists: bool = False
    diff: str = ""


@dataclass
class TicketPreview:
    objects: list[ObjectPreview] = field(default_factory=list)
    guardrails: list = field(default_factory=list)
    error: str = ""
    compare_error: str = ""
    cluster: Cluster | None = None


def _comparable(obj: dict) -> dict:
    obj = {key: value for key, value in secret_env.redact_secret_object(obj).items() if key != "status"}
    metadata = {k: v for k, v in obj.get("metadata", {}).items() if k not in _VOLATILE_METADATA}
    return {**obj, "metadata": metadata}


def _dump(obj: dict) -> str:
    return yaml.safe_dump(obj, sort_keys=False, allow_unicode=True, default_flow_style=False)


def target_cluster(ticket: OnboardingTicket) -> Cluster | None:
    """The cluster approval would use: the ticket's, the environment's, or the only one there is."""
    if ticket.cluster_id:
        return ticket.cluster
    environment = ProjectEnvironment.objects.filter(
        project=ticket.project, environment=ticket.environment
    ).first()
    if environment and environment.cluster_id:
        return environment.cluster
    clusters = list(Cluster.objects.filter(environment=ticket.environment)[:2])
    return clusters[0] if len(clusters) == 1 else None


def ticket_preview(*, ticket: OnboardingTicket) -> TicketPreview:
    from integrations.kubernetes.client import KubeClient

    preview = TicketPreview(cluster=target_cluster(ticket))
    if preview.cluster is not None and ticket.cluster_id is None:
        ticket.cluster = preview.cluster  # for the namespace template; not saved
    try:
        rendered = manifests.render(services.ticket_spec(ticket))
    except ValidationError as exc:
        preview.error = "; ".join(exc.messages)
        return preview
    preview.guardrails = rendered.guardrails
    secrets = secret_env.load(ticket.secret_env)
    # Filled so the dry run compares the real values; every object is shown through the redaction.
    objects = [
        manifests.secret_with_values(obj, secrets) if obj["kind"] == "Secret" else obj
        for obj in rendered.objects
    ]
    preview.objects = [
        ObjectPreview(
            kind=obj["kind"], name=obj["metadata"]["name"], yaml=_dump(secret_env.redact_secret_object(obj))
        )
        for obj in objects
    ]
    if preview.cluster is None:
        preview.compare_error = _("No cluster is chosen yet, so there is nothing live to compare with.")
        return preview
    try:
        with KubeClient.from_cluster(preview.cluster) as client:
            _compare(client, objects, preview.objects)
    except IntegrationError as exc:
        preview.compare_error = _("Could not compare with the live objects on %(cluster)s: %(error)s") % {
            "cluster": preview.cluster.name,
            "error": exc,
        }
    return preview


def _compare(client, objects: list[dict], previews: list[ObjectPreview]) -> None:
    for obj, item in zip(objects, previews, strict=True):
        live = client.get(obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
        if live is None:
            continue
        item.exists = True
        after = client.apply_dry_run(services.keep_live_fields(client, obj))
        item.diff = "".join(
            difflib.unified_diff(
                _dump(_comparable(live)).splitlines(keepends=True),
                _dump(_comparable(after)).splitlines(keepends=True),
                fromfile=f"live {item.kind}/{item.name}",
                tofile=f"after approval {item.kind}/{item.name}",
            )
        )
