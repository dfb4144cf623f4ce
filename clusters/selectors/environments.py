"""Reading a project environment's live objects: pods, Service, Deployment, HPA and events.

The summaries here are the small JSON shapes the page, the API and the WebSocket consumer all send, so
the three always agree on what a pod row is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from django.conf import settings
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.choices import ConfigChangeStatus
from clusters.models import ProjectEnvironment
from clusters.selectors.pod_health import pod_problem
from integrations.errors import IntegrationError
from opsportal.versions import combine_changes, content_version, stale_message
from projects.access import Action, check, get_project
from projects.choices import Environment
from projects.models import Project

EVENT_LIMIT = 50


@dataclass(frozen=True)
class EnvironmentRef:
    """A provisioned project environment, what identifies its objects in the cluster, and what the user
    who asked for it may do there (``actions``, from projects.access)."""

    project: Project
    environment: ProjectEnvironment
    actions: frozenset[Action] = field(default=frozenset(), compare=False)

    @property
    def name(self) -> str:  # Deployment, Service and HPA are all named after the project
        return self.project.name

    @property
    def namespace(self) -> str:
        return self.environment.namespace

    @property
    def label_selector(self) -> str:
        return ",".join(
            f"{key}={value}"
            for key, value in {
                "app.kubernetes.io/name": self.project.name,
                "app.kubernetes.io/instance": f"{self.project.name}-{self.environment.environment}",
            }.items()
        )

    def client(self):
        from integrations.kubernetes.client import KubeClient

        return KubeClient.from_cluster(self.environment.cluster)


def operate_action(environment: str) -> Action:
    """Restart, scale, delete a pod: developers and up on test, ops only on production."""
    return Action.OPERATE_PROD if environment == Environment.PROD else Action.OPERATE_TEST


def environment_get(*, user, name: str, environment: str, action: Action = Action.VIEW) -> EnvironmentRef:
    """The one access function for a project environment: its pages, API, WebSocket and terminal.

    Checked in this order: Http404 for someone who may not see the project (nothing else is revealed)
    and for an environment name that does not exist; PermissionDenied for a member lacking ``action``
    there; Http404 for an environment the project does not run in yet."""
    project = get_project(user, name=name)
    if environment not in Environment.values:
        raise Http404("No such environment.")
    actions = check(user, action, project)
    env = (
        ProjectEnvironment.objects.select_related("cluster")
        .filter(project=project, environment=environment, cluster__isnull=False)
        .first()
    )
    if env is None or not env.namespace:
        raise Http404("This project does not run in that environment yet.")
    env.project = project  # the one already read, not a second query
    return EnvironmentRef(project=project, environment=env, actions=actions)


# --- summaries ------------------------------------------------------------------------------------------


def _age_seconds(stamp: str | None) -> int | None:
    if not stamp:
        return None
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0, int((timezone.now() - when).total_seconds()))


def pod_summary(pod: dict) -> dict:
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    containers = []
    for item in statuses:
        state = item.get("state") or {}
        current = next(iter(state), "")
        detail = state.get(current) or {}
        last = (item.get("lastState") or {}).get("terminated") or {}
        containers.append(
            {
                "name": item.get("name", ""),
                "ready": bool(item.get("ready")),
                "restarts": item.get("restartCount", 0),
                "state": current,
                "reason": detail.get("reason", ""),
                "message": detail.get("message", ""),
                "image": item.get("image", ""),
                "image_id": item.get("imageID", ""),
                "last_termination_reason": last.get("reason", ""),
                "last_exit_code": last.get("exitCode"),
                "last_termination": _termination(last),
            }
        )
    names = [c.get("name", "") for c in spec.get("containers") or []]
    # The container the row speaks for: the first one not running, else the first one.
    shown = next((c for c in containers if c["state"] != "running"), containers[0] if containers else None)
    problem = pod_problem(pod)
    phase = status.get("phase", "Unknown")
    if meta.get("deletionTimestamp"):
        phase = "Terminating"
    return {
        "name": meta.get("name", ""),
        "phase": phase,
        "ready": conditions.get("Ready") == "True",
        "ready_count": f"{sum(1 for c in containers if c['ready'])}/{len(names) or len(containers)}",
        "restarts": sum(c["restarts"] for c in containers),
        "node": spec.get("nodeName", ""),
        "pod_ip": status.get("podIP", ""),
        "created_at": meta.get("creationTimestamp", ""),
        "age_seconds": _age_seconds(meta.get("creationTimestamp")),
        "image_ids": [c["image_id"] for c in containers if c["image_id"]],
        "last_termination_reason": next(
            (c["last_termination_reason"] for c in containers if c["last_termination_reason"]), ""
        ),
        "state_reason": (shown or {}).get("reason", ""),
        "state_message": (shown or {}).get("message", ""),
        "last_termination": next((c["last_termination"] for c in containers if c["last_termination"]), None),
        "problem": problem.as_dict() if problem else None,
        "containers": names or [c["name"] for c in containers],
        "container_statuses": containers,
    }


def _termination(terminated: dict) -> dict | None:
    """A container's last termination as the page shows it: reason, exit code, when, message."""
    if not terminated:
        return None
    return {
        "reason": terminated.get("reason", ""),
        "exit_code": terminated.get("exitCode"),
        "finished_at": terminated.get("finishedAt") or "",
        "message": terminated.get("message", ""),
    }


def service_summary(service: dict | None) -> dict | None:
    if not service:
        return None
    spec, status = service.get("spec") or {}, service.get("status") or {}
    ingress = ((status.get("loadBalancer") or {}).get("ingress")) or []
    return {
        "name": (service.get("metadata") or {}).get("name", ""),
        "type": spec.get("type", ""),
        "cluster_ip": spec.get("clusterIP", ""),
        "ingress": [i.get("ip") or i.get("hostname") or "" for i in ingress],
        "ports": [
            {
                "name": p.get("name", ""),
                "port": p.get("port"),
                "target_port": p.get("targetPort"),
                "node_port": p.get("nodePort"),
                "protocol": p.get("protocol", "TCP"),
            }
            for p in spec.get("ports") or []
        ],
    }


def deployment_summary(deployment: dict | None) -> dict | None:
    if not deployment:
        return None
    from integrations.kubernetes.client import rollout_status

    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    template = spec.get("template") or {}
    rollout = rollout_status(deployment)
    return {
        "name": (deployment.get("metadata") or {}).get("name", ""),
        "replicas": spec.get("replicas"),
        "ready_replicas": status.get("readyReplicas", 0),
        "updated_replicas": status.get("updatedReplicas", 0),
        "available_replicas": status.get("availableReplicas", 0),
        "images": [c.get("image", "") for c in (template.get("spec") or {}).get("containers") or []],
        "restarted_at": ((template.get("metadata") or {}).get("annotations") or {}).get(
            "kubectl.kubernetes.io/restartedAt", ""
        ),
        "rollout": {"state": rollout.state, "message": rollout.message, "revision": rollout.revision},
    }


def _metric(metric: dict, key: str) -> dict:
    kind = metric.get("type", "")
    body = metric.get(kind[:1].lower() + kind[1:]) or {}
    values = body.get(key) or {}
    return {
        "type": kind,
        "name": body.get("name") or (body.get("metric") or {}).get("name", ""),
        "average_utilization": values.get("averageUtilization"),
        "average_value": values.get("averageValue"),
        "value": values.get("value"),
    }


def _cpu_utilization(metrics: list[dict] | None, key: str) -> int | None:
    for metric in metrics or []:
        if metric.get("type") == "Resource" and (metric.get("resource") or {}).get("name") == "cpu":
            return ((metric.get("resource") or {}).get(key) or {}).get("averageUtilization")
    return None


def hpa_summary(hpa: dict | None) -> dict | None:
    if not hpa:
        return None
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    conditions = {c.get("type", ""): c for c in status.get("conditions") or []}
    return {
        "name": (hpa.get("metadata") or {}).get("name", ""),
        "min_replicas": spec.get("minReplicas", 1),
        "max_replicas": spec.get("maxReplicas"),
        "current_replicas": status.get("currentReplicas", 0),
        "desired_replicas": status.get("desiredReplicas", 0),
        "metrics": [_metric(m, "target") for m in spec.get("metrics") or []],
        "current_metrics": [_metric(m, "current") for m in status.get("currentMetrics") or []],
        "cpu_target_utilization": _cpu_utilization(spec.get("metrics"), "target"),
        "cpu_current_utilization": _cpu_utilization(status.get("currentMetrics"), "current"),
        "scaling_active": conditions.get("ScalingActive", {}).get("status") == "True" if conditions else None,
        # Why the autoscaler cannot act (e.g. FailedGetResourceMetric: no metrics API), shown as a warning.
        "inactive_messages": [
            f"{c.get('reason', '')}: {c.get('message', '')}"
            for c in conditions.values()
            if conditions.get("ScalingActive", {}).get("status") != "True" and c.get("status") != "True"
        ],
        "conditions": [
            {
                "type": c.get("type", ""),
                "status": c.get("status", ""),
                "reason": c.get("reason", ""),
                "message": c.get("message", ""),
            }
            for c in status.get("conditions") or []
        ],
    }


def event_summary(event: dict) -> dict:
    involved = event.get("involvedObject") or {}
    return {
        "type": event.get("type", ""),
        "reason": event.get("reason", ""),
        "message": event.get("message", ""),
        "object": f"{involved.get('kind', '')}/{involved.get('name', '')}",
        "count": event.get("count") or 1,
        "last_seen": event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or "",
    }


def is_own_event(ref: EnvironmentRef, event: dict) -> bool:
    """Events about the project's objects: the Deployment, HPA, Service, its ReplicaSets and pods."""
    name = (event.get("involvedObject") or {}).get("name", "")
    return name == ref.name or name.startswith(f"{ref.name}-")


def events_summary(ref: EnvironmentRef, events: list[dict]) -> list[dict]:
    own = [event_summary(e) for e in events if is_own_event(ref, e)]
    own.sort(key=lambda e: e["last_seen"], reverse=True)
    return own[:EVENT_LIMIT]


def pod_warnings(ref: EnvironmentRef, events: list[dict]) -> list[dict]:
    """The kubelet's warnings about the environment's pods (Unhealthy, BackOff, Killing, OOM…), one row
    per pod and reason with the count summed over its events and the latest message, newest first.

    Events repeat (a probe fails every period) and the apiserver keeps them for an hour, so a count
    says how often while the page stays short."""
    rows: dict[tuple[str, str], dict] = {}
    for event in events:
        involved = event.get("involvedObject") or {}
        if event.get("type") != "Warning" or involved.get("kind") != "Pod" or not is_own_event(ref, event):
            continue
        summary = event_summary(event)
        key = (involved.get("name", ""), summary["reason"])
        row = rows.get(key)
        if row is None:
            rows[key] = {
                "pod": key[0],
                "reason": summary["reason"],
                "count": summary["count"],
                "message": summary["message"],
                "last_seen": summary["last_seen"],
            }
            continue
        row["count"] += summary["count"]
        if summary["last_seen"] >= row["last_seen"]:
            row["message"], row["last_seen"] = summary["message"], summary["last_seen"]
    return sorted(rows.values(), key=lambda r: r["last_seen"], reverse=True)[:EVENT_LIMIT]


def config_version(spec: dict | None) -> str:
    """The version of an environment's configuration, which an edit must name (see opsportal.versions)."""
    spec = spec or {}
    return content_version({"request": spec.get("request") or {}, "overrides": spec.get("overrides") or {}})


def config_summary(ref: EnvironmentRef) -> dict:
    spec = ref.environment.spec or {}
    request = spec.get("request") or {}
    return {
        "request": request,
        "overrides": spec.get("overrides") or {},
        "secret_env_names": request.get("secret_env_names") or [],
        "version": config_version(spec),
    }


STALE_HISTORY = 50
AUTHORS_SHOWN = 10


def config_stale_message(environment: ProjectEnvironment, version: str) -> str:
    """What changed in the configuration since the editor loaded ``version``, and by whom.

    Every configuration change keeps the whole configuration it applies, so the change that produced
    ``version`` is found by its fingerprint; the applied changes after it are what the editor missed.
    Not found (the editor loaded the configuration as provisioned): every applied change counts."""
    from clusters.models import ConfigChange

    current = config_version(environment.spec)
    missed = []
    history = ConfigChange.objects.filter(environment=environment).select_related("actor").order_by("-pk")
    for change in history[:STALE_HISTORY]:
        written = config_version({"request": change.request, "overrides": change.overrides})
        if written == version:
            break
        if change.status == ConfigChangeStatus.APPLIED or written == current:
            missed.append(change)
    missed.reverse()
    return stale_message(
        what=_("The configuration of %(env)s") % {"env": environment},
        changes=combine_changes([change.changes for change in missed]),
        authors=[f"{change.actor.get_username()} (#{change.pk})" for change in missed][-AUTHORS_SHOWN:],
    )


def environment_state(ref: EnvironmentRef) -> dict:
    """Everything the page shows, read once; ``error`` says why the cluster could not be read."""
    state: dict = {
        "project": ref.project.name,
        "environment": ref.environment.environment,
        "namespace": ref.namespace,
        "cluster": ref.environment.cluster.name,
        "pods": [],
        "service": None,
        "deployment": None,
        "hpa": None,
        "events": [],
        "pod_warnings": [],
        "config": config_summary(ref),
        "error": "",
    }
    try:
        with ref.client() as client:
            pods = client.list_objects("Pod", ref.namespace, label_selector=ref.label_selector)
            state["pods"] = sorted((pod_summary(p) for p in pods.get("items") or []), key=lambda p: p["name"])
            state["service"] = service_summary(client.get("Service", ref.namespace, ref.name))
            state["deployment"] = deployment_summary(client.get("Deployment", ref.namespace, ref.name))
            state["hpa"] = hpa_summary(client.get("HorizontalPodAutoscaler", ref.namespace, ref.name))
            events = client.list_objects("Event", ref.namespace)
            state["events"] = events_summary(ref, events.get("items") or [])
            state["pod_warnings"] = pod_warnings(ref, events.get("items") or [])
    except IntegrationError as exc:
        state["error"] = str(exc)
    return state


def is_own_pod(ref: EnvironmentRef, pod: dict | None) -> bool:
    """Whether a pod belongs to this environment: it carries both of the environment's selector labels.

    The one test for "is this pod ours", used by the terminal, the log follower, pod deletion, log
    downloads and the live page; a pod of the same project's other environment sharing the namespace,
    or of another project, is not."""
    labels = ((pod or {}).get("metadata") or {}).get("labels") or {}
    wanted = dict(pair.split("=", 1) for pair in ref.label_selector.split(","))
    return pod is not None and all(labels.get(k) == v for k, v in wanted.items())


def log_search_url(ref: EnvironmentRef, pod: str) -> str:
    """The team's log search for one pod, from OPSPORTAL_LOG_SEARCH_URL_TEMPLATE; "" when unset."""
    # A setting when settings.py defines one (tests override it), else straight from the environment.
    template = getattr(settings, "OPSPORTAL_LOG_SEARCH_URL_TEMPLATE", None)
    if template is None:
        template = os.environ.get("OPSPORTAL_LOG_SEARCH_URL_TEMPLATE", "")
    if not template:
        return ""
    values = {
        "project": ref.project.name,
        "environment": ref.environment.environment,
        "namespace": ref.namespace,
        "pod": pod,
    }
    url = template
    for key, value in values.items():
        url = url.replace("{" + key + "}", quote(value, safe=""))
    return url


# --- configuration changes ------------------------------------------------------------------------------


def config_changes_list(ref: EnvironmentRef, *, limit: int = 50):
    """The environment's latest configuration changes, newest first (ref is already access-checked)."""
    from clusters.models import ConfigChange

    return ConfigChange.objects.filter(environment=ref.environment).select_related("actor")[:limit]


def config_change_get(ref: EnvironmentRef, pk: int):
    """One change of this environment; 404 for another environment's (ref is already access-checked)."""
    from clusters.models import ConfigChange

    change = ConfigChange.objects.filter(environment=ref.environment, pk=pk).select_related("actor").first()
    if change is None:
        raise Http404("No such configuration change.")
    return change


def config_change_active(ref: EnvironmentRef):
    from clusters.choices import ACTIVE_CONFIG_CHANGE_STATUSES
    from clusters.models import ConfigChange

    return (
        ConfigChange.objects.filter(environment=ref.environment, status__in=ACTIVE_CONFIG_CHANGE_STATUSES)
        .order_by("-id")
        .first()
    )
