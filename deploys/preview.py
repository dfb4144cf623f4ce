"""What approving a ticket would do: the rendered objects as YAML, and for objects that already exist
a diff between the live object and what the apiserver says it would become (server-side dry run)."""

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from clusters.models import Cluster
from clusters.services.workload import keep_live_fields
from clusters.workload import manifests, secret_env
from clusters.workload.diff import dump, object_diff
from deploys import selectors, services
from deploys.models import OnboardingTicket
from integrations.errors import IntegrationError


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
    # How a pod stops: the worst-case stale window and its parts, the preStop wait, the grace period.
    stop_budget: manifests.StopBudget | None = None
    # What a service that logs to the pipeline gets, as people may see it (a password masked).
    log_env: dict[str, str] = field(default_factory=dict)


def ticket_preview(*, ticket: OnboardingTicket) -> TicketPreview:
    from integrations.kubernetes.client import KubeClient

    preview = TicketPreview(cluster=selectors.approval_cluster(ticket=ticket))
    if preview.cluster is not None and ticket.cluster_id is None:
        ticket.cluster = preview.cluster  # for the namespace template; not saved
    try:
        spec = services.ticket_spec(ticket)
        rendered = manifests.render(spec)
    except ValidationError as exc:
        preview.error = "; ".join(exc.messages)
        return preview
    preview.guardrails = rendered.guardrails
    preview.stop_budget = manifests.stop_budget(spec)
    if spec.logs_to_pipeline and spec.log_redis_key:
        preview.log_env = {
            manifests.LOG_URL_ENV: spec.log_redis_url,
            manifests.LOG_KEY_ENV: spec.log_redis_key,
        }
    secrets = services.ticket_secret_values(ticket)
    # Filled so the dry run compares the real values; every object is shown through the redaction.
    objects = [
        manifests.secret_with_values(obj, secrets) if obj["kind"] == "Secret" else obj
        for obj in rendered.objects
    ]
    preview.objects = [
        ObjectPreview(
            kind=obj["kind"], name=obj["metadata"]["name"], yaml=dump(secret_env.redact_secret_object(obj))
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
        after = client.apply_dry_run(keep_live_fields(client, obj))
        item.diff = object_diff(live, after, kind=item.kind, name=item.name, after_label="after approval")
