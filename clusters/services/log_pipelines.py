"""A cluster's log pipeline: its settings (ops), and putting the log proxy's objects on the cluster.

The settings are saved whole or not at all: every field is validated (Kafka addresses, topic names and
the mapping's rules, the namespace, the replica bounds) before anything is written. The password is
write-only: it is stored encrypted, never shown back, and the audit trail only says it changed.
Deploying (building the proxy's image, then ``log_proxy_apply``) is a run of deploys, above clusters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from clusters.choices import ClusterMonitoring
from clusters.models import Cluster, LogPipeline
from clusters.models.logging import SERVICE_NAME
from clusters.selectors.pod_health import crash_loop_cause, pod_problem
from clusters.workload import logproxy
from integrations.errors import Invalid, NotFound
from observability.services import audit_record, changes_between
from projects.access import require_ops

# Settings recorded in the audit trail with their old and new values (the password only as "changed").
AUDITED_FIELDS = (
    "kafka_bootstrap_servers",
    "portal_bootstrap_servers",
    "default_topic",
    "topic_mapping",
    "namespace",
    "service_address",
    "min_replicas",
    "max_replicas",
    "kibana_url",
)
MAX_REPLICAS = 50
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOST_PORT = re.compile(r"^[A-Za-z0-9.-]+:[0-9]{1,5}$")


def _clean(values: dict) -> dict[str, list[str]]:
    """Field → messages for everything wrong in ``values`` (the model's validators, then the rest)."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(str(message))

    if not values["kafka_bootstrap_servers"].strip(","):
        add("kafka_bootstrap_servers", _("Give at least one Kafka bootstrap server (host:port)."))
    namespace = values["namespace"]
    if not _DNS_LABEL.match(namespace):
        add(
            "namespace",
            _("%(ns)s is not a namespace name: lower-case letters, digits and '-', at most 63.")
            % {"ns": namespace or '""'},
        )
    address = values["service_address"]
    if address and not _HOST_PORT.match(address):
        add("service_address", _("Write the address as host:port, e.g. logproxy.example.com:6379."))
    low, high = values["min_replicas"], values["max_replicas"]
    if not 1 <= low <= MAX_REPLICAS:
        add("min_replicas", _("Between 1 and %(max)s.") % {"max": MAX_REPLICAS})
    if not 1 <= high <= MAX_REPLICAS:
        add("max_replicas", _("Between 1 and %(max)s.") % {"max": MAX_REPLICAS})
    elif low > high:
        add("max_replicas", _("At least the minimum (%(min)s).") % {"min": low})
    kibana = values["kibana_url"]
    if kibana and not kibana.startswith(("https://", "http://")):
        add("kibana_url", _("The Kibana link must start with https:// or http://."))
    candidate = LogPipeline(**{name: values[name] for name in AUDITED_FIELDS})
    try:
        candidate.clean_fields(exclude=["cluster", "password", *[f for f in AUDITED_FIELDS if f in errors]])
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            for message in messages:
                add(name, message)
    return errors


def log_pipeline_save(
    *,
    actor,
    cluster: Cluster,
    kafka_bootstrap_servers: str,
    portal_bootstrap_servers: str = "",
    default_topic: str = "app-logs",
    topic_mapping: str = "",
    namespace: str = "opsportal-logging",
    service_address: str = "",
    min_replicas: int = 2,
    max_replicas: int = 6,
    kibana_url: str = "",
    password: str | None = None,
    clear_password: bool = False,
    remote_addr: str | None = None,
) -> LogPipeline:
    """Create or update the cluster's log pipeline (ops). ``password`` None (or "") keeps the stored one,
    ``clear_password`` removes it. A ValidationError names every bad field; then nothing is written."""
    require_ops(actor)
    values = {
        "kafka_bootstrap_servers": ",".join(
            s.strip() for s in kafka_bootstrap_servers.split(",") if s.strip()
        ),
        "portal_bootstrap_servers": ",".join(
            s.strip() for s in portal_bootstrap_servers.split(",") if s.strip()
        ),
        "default_topic": default_topic.strip(),
        "topic_mapping": "\n".join(
            line.strip() for line in topic_mapping.replace(",", "\n").splitlines() if line.strip()
        ),
        "namespace": namespace.strip(),
        "service_address": service_address.strip(),
        "min_replicas": int(min_replicas),
        "max_replicas": int(max_replicas),
        "kibana_url": kibana_url.strip(),
    }
    errors = _clean(values)
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        Cluster.objects.select_for_update().get(pk=cluster.pk)
        pipeline = LogPipeline.objects.select_for_update().filter(cluster=cluster).first()
        created = pipeline is None
        before = {} if created else {name: getattr(pipeline, name) for name in AUDITED_FIELDS}
        pipeline = pipeline or LogPipeline(cluster=cluster)
        for name, value in values.items():
            setattr(pipeline, name, value)
        changes = changes_between(before, values) if not created else dict(values)
        if clear_password and pipeline.password:
            pipeline.password = ""
            # Not under a "password" key: the audit trail redacts those, and this must be readable.
            changes["auth"] = "password removed"
        elif password:
            pipeline.password = password
            changes["auth"] = "password changed"
        pipeline.save()
        if created or changes:
            audit_record(
                actor=actor,
                verb="log_pipeline.create" if created else "log_pipeline.update",
                target=pipeline,
                changes={"cluster": cluster.name, **changes},
                remote_addr=remote_addr,
            )
    return pipeline


# --- putting the proxy on the cluster (a deploys run's apply step) ---------------------------------


@dataclass(frozen=True)
class ProxyRollout:
    ok: bool
    message: str
    applied: list[str] = field(default_factory=list)  # "Kind/name" of each object applied
    replicas: int = 0


_NEXT_STEP = {
    "ProgressDeadlineExceeded": _(
        "look at the proxy's pods on this page (image pull, scheduling, quota) and deploy again."
    ),
    "Deleted": _("someone deleted the Deployment meanwhile; deploy again."),
    "Timeout": _("the pods did not become ready; look at their status below and deploy again."),
}


def _spec(pipeline: LogPipeline, image: str, replicas: int) -> logproxy.ProxySpec:
    cluster = pipeline.cluster
    return logproxy.ProxySpec(
        namespace=pipeline.namespace,
        image=image,
        bootstrap_servers=pipeline.kafka_bootstrap_servers,
        default_topic=pipeline.default_topic,
        topic_mapping=pipeline.topic_mapping,
        password=str(pipeline.password or ""),
        min_replicas=pipeline.min_replicas,
        max_replicas=pipeline.max_replicas,
        replicas=replicas,
        metrics_port=settings.LOGPROXY_METRICS_PORT,
        service_monitor=cluster.monitoring == ClusterMonitoring.SERVICE_MONITOR,
        cluster=cluster.name,
    )


def log_proxy_apply(*, pipeline: LogPipeline, image: str, progress, on_progress) -> ProxyRollout:
    """Apply the proxy's objects (server-side, as "opsportal-logproxy") in the pipeline's namespace and
    follow the Deployment's rollout. ``progress(text)`` gets a line per object; ``on_progress`` each
    rollout state. A refusal by the apiserver or a failed rollout is a result with the cause and the next
    step; a transient cluster error propagates, for the caller's task to retry (apply is idempotent)."""
    from integrations.kubernetes.client import KubeClient

    namespace = pipeline.namespace
    applied: list[str] = []
    with KubeClient.from_cluster(pipeline.cluster) as client:
        live = client.get("Deployment", namespace, SERVICE_NAME)
        current = ((live or {}).get("spec") or {}).get("replicas")
        replicas = logproxy.clamp_replicas(
            current, minimum=pipeline.min_replicas, maximum=pipeline.max_replicas
        )
        objects = logproxy.render(_spec(pipeline, image, replicas), config_key=settings.SECRET_KEY)
        for obj in objects:
            name = f"{obj['kind']}/{obj['metadata']['name']}"
            try:
                client.apply(obj, field_manager="opsportal-logproxy")
            except (Invalid, NotFound) as exc:
                hint = (
                    _("the cluster has no Prometheus Operator: let the portal's Prometheus scrape it.")
                    if obj["kind"] == "ServiceMonitor"
                    else _("fix the pipeline's settings and deploy again.")
                )
                return ProxyRollout(
                    ok=False,
                    message=_("The cluster refused %(name)s: %(cause)s — %(next)s")
                    % {"name": name, "cause": exc, "next": hint},
                    applied=applied,
                )
            applied.append(name)
            progress(_("Applied %(name)s in %(ns)s.") % {"name": name, "ns": namespace})
        outcome = client.wait_for_deployment(
            namespace,
            SERVICE_NAME,
            timeout=logproxy.PROGRESS_DEADLINE_SECONDS + 60,
            on_progress=on_progress,
            check=partial(_failing_new_pods, client, namespace, image),
            check_seconds=settings.RELEASE_POD_CHECK_SECONDS,
        )
    if outcome.succeeded:
        return ProxyRollout(ok=True, message="", applied=applied, replicas=outcome.ready)
    if outcome.reason == NEW_PODS_FAILING:
        return ProxyRollout(ok=False, message=outcome.message, applied=applied)
    reason = outcome.reason or outcome.state
    next_step = _NEXT_STEP.get(reason, _NEXT_STEP["Timeout"])
    return ProxyRollout(
        ok=False,
        message=f"{reason}: {outcome.message} — {next_step}",
        applied=applied,
        replicas=outcome.ready,
    )


NEW_PODS_FAILING = "NewPodsFailing"


def _failing_new_pods(client, namespace: str, image: str):
    """A failed rollout as soon as a proxy pod running ``image`` crash-loops or was OOMKilled."""
    from integrations.kubernetes.client import Rollout, RolloutOutcome

    pods = client.list_objects("Pod", namespace, label_selector=logproxy.selector_text()).get("items") or []
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", "")):
        containers = (pod.get("spec") or {}).get("containers") or []
        if not any(c.get("name") == logproxy.CONTAINER and c.get("image") == image for c in containers):
            continue
        cause = crash_loop_cause(pod, restart_threshold=settings.RELEASE_CRASHLOOP_RESTARTS) or _stuck_cause(
            pod
        )
        if cause:
            return RolloutOutcome(Rollout.FAILED, reason=NEW_PODS_FAILING, message=cause)
    return None


# Waiting reasons that do not heal by waiting: the image cannot be pulled (the kubelet already retried),
# or the container cannot be created (e.g. the image has no `python`). The Deployment's status does not
# change meanwhile, so without this the rollout would wait out its progress deadline.
_STUCK_REASONS = frozenset(
    {"ImagePullBackOff", "InvalidImageName", "CreateContainerError", "RunContainerError"}
)


def _stuck_cause(pod: dict) -> str:
    problem = pod_problem(pod)
    if problem is None or problem.reason not in _STUCK_REASONS:
        return ""
    name = (pod.get("metadata") or {}).get("name", "")
    words = f": {problem.message}" if problem.message else ""
    return f"{name}: {problem.reason}{words} — {problem.hint}"
