"""Actions on a running project environment: restart, scale, delete a pod, and edit its configuration.

Each checks the caller's right with projects.access, talks to the cluster, and records an AuditEvent.
Configuration edits go through the same guarded rendering as onboarding (build_spec → render →
keep_live_fields → server-side apply as "opsportal") and are dry-run here (config_plan), so an object the
apiserver rejects is refused before anything is recorded; clusters.services.config_changes records the
edit and its task applies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import Cluster, ProjectEnvironment
from clusters.selectors.clusters import cluster_log_pipeline
from clusters.selectors.environments import (
    EnvironmentRef,
    config_stale_message,
    config_version,
    is_own_pod,
    operate_action,
)
from clusters.selectors.pod_health import crash_loop_cause
from clusters.services.workload import had_env_secret, keep_live_fields, objects_to_apply
from clusters.workload import fields as workload_fields
from clusters.workload import manifests, secret_env
from clusters.workload.diff import object_diff
from clusters.workload.request import build_spec, log_secret_values, namespace_for, refuse_prod_image
from integrations.errors import IntegrationError, Invalid, NotFound
from integrations.kubernetes.client import KINDS
from observability import events
from observability.services import audit_record, changes_between
from opsportal.errors import StateConflict
from projects.access import Action, check, is_ops
from projects.models import Project

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
KUBE_KINDS = frozenset(KINDS)


def _record(*, actor, ref: EnvironmentRef, verb: str, changes: dict, remote_addr: str | None) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            verb=verb,
            target=ref.environment,
            project=ref.project,
            changes=changes,
            remote_addr=remote_addr,
        )
        transaction.on_commit(
            lambda: events.publish(
                stream=events.project_stream(ref.project.pk),
                type="environment-changed",
                payload={"environment": ref.environment.environment, "verb": verb},
            )
        )


def _kube_error(exc: IntegrationError) -> ValidationError:
    causes = getattr(exc, "causes", None) or []
    detail = "; ".join(f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes)
    return ValidationError(detail or str(exc))


def _check_own_pod(client, ref: EnvironmentRef, pod: str) -> None:
    if not is_own_pod(ref, client.get("Pod", ref.namespace, pod)):
        raise ValidationError({"pod": _("There is no pod %(pod)s in this environment.") % {"pod": pod}})


def pod_logs(
    *,
    actor,
    ref: EnvironmentRef,
    pod: str,
    container: str = "",
    tail: int | None = None,
    previous: bool = False,
) -> str:
    """The last ``tail`` lines of a container's log; the previous container's with ``previous``.

    The apiserver's 400 (no previous container, container still waiting) comes back as ValidationError
    carrying its message."""
    check(actor, Action.VIEW, ref.project)
    with ref.client() as client:
        _check_own_pod(client, ref, pod)
        try:
            return client.pod_log(ref.namespace, pod, container=container, tail_lines=tail, previous=previous)
        except Invalid as exc:
            raise ValidationError(exc.message) from exc


# --- operations -------------------------------------------------------------------------------------------


def environment_restart(*, actor, ref: EnvironmentRef, remote_addr: str | None = None) -> str:
    """A rollout restart, as ``kubectl rollout restart`` does it; returns the restartedAt stamp."""
    check(actor, operate_action(ref.environment.environment), ref.project)
    stamp = timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    with ref.client() as client:
        client.patch("Deployment", ref.namespace, ref.name, patch)
    _record(
        actor=actor,
        ref=ref,
        verb="environment.restart",
        changes={"restartedAt": [None, stamp]},
        remote_addr=remote_addr,
    )
    return stamp


def environment_teardown(*, actor, ref: EnvironmentRef, remote_addr: str | None = None) -> list[str]:
    """Take a project out of an environment (ops only): delete the objects the portal applied there, then
    forget the environment, so its scrape targets go at the next discovery and its dashboard and alert
    rule file are removed.

    The cluster comes first: a failure leaves the environment recorded and the error said, and a second
    teardown deletes what is left (objects already gone count as deleted). The namespace stays: the
    cluster's namespace template may share it, and ops remove it with the cluster's own tools.
    Returns the objects deleted, as "Kind/name"."""
    if not is_ops(actor):
        raise PermissionDenied(_("Only ops take a project out of an environment."))
    objects = [
        (o["kind"], o["name"]) for o in ref.environment.live_objects if o.get("kind") and o.get("name")
    ]
    deleted = []
    # An unreachable or refusing cluster is the caller's IntegrationError (the API's 502): nothing is
    # recorded, and the next try deletes what is left.
    with ref.client() as client:
        for kind, name in reversed(objects):
            if kind in KUBE_KINDS and client.delete(kind, ref.namespace, name):
                deleted.append(f"{kind}/{name}")
    with transaction.atomic():
        environment = ProjectEnvironment.objects.select_for_update().filter(pk=ref.environment.pk).first()
        if environment is None:
            raise StateConflict(_("This environment was already taken down."))
        _record(
            actor=actor,
            ref=ref,
            verb="environment.teardown",
            changes={
                "cluster": [environment.cluster.name if environment.cluster else "", None],
                "namespace": [environment.namespace, None],
                "deleted": deleted,
            },
            remote_addr=remote_addr,
        )
        from clusters.services.dashboards import dashboard_request_remove

        dashboard_request_remove(environment=environment)
        from clusters.services.alert_rules import alert_rules_request_remove

        alert_rules_request_remove(environment=environment)
        environment.delete()
    return deleted


def scale_bounds(hpa: dict | None) -> tuple[int, int]:
    if not hpa:
        return 1, manifests.HPA_MAX_REPLICAS
    spec = hpa.get("spec") or {}
    return spec.get("minReplicas", 1), spec.get("maxReplicas", manifests.HPA_MAX_REPLICAS)


def environment_scale(*, actor, ref: EnvironmentRef, replicas, remote_addr: str | None = None) -> int:
    """Set the replica count, within the autoscaler's [min, max] (outside it the HPA would undo it)."""
    check(actor, operate_action(ref.environment.environment), ref.project)
    if isinstance(replicas, bool) or not isinstance(replicas, int):
        raise ValidationError({"replicas": _("Enter a whole number of replicas.")})
    with ref.client() as client:
        low, high = scale_bounds(client.get("HorizontalPodAutoscaler", ref.namespace, ref.name))
        if not low <= replicas <= high:
            raise ValidationError(
                {
                    "replicas": _(
                        "%(n)s replicas is outside the autoscaler's range %(min)s–%(max)s; "
                        "change the range in the configuration first."
                    )
                    % {"n": replicas, "min": low, "max": high}
                }
            )
        live = client.get("Deployment", ref.namespace, ref.name)
        if live is None:
            raise ValidationError(_("The Deployment %(name)s does not exist.") % {"name": ref.name})
        before = (live.get("spec") or {}).get("replicas")
        if before == replicas:
            return replicas
        client.scale_deployment(ref.namespace, ref.name, replicas)
    _record(
        actor=actor,
        ref=ref,
        verb="environment.scale",
        changes={"replicas": [before, replicas]},
        remote_addr=remote_addr,
    )
    return replicas


def environment_delete_pod(*, actor, ref: EnvironmentRef, pod: str, remote_addr: str | None = None) -> None:
    """Delete one of the environment's pods (its ReplicaSet starts a replacement)."""
    check(actor, operate_action(ref.environment.environment), ref.project)
    with ref.client() as client:
        _check_own_pod(client, ref, pod)
        try:
            client.delete_pod(ref.namespace, pod)
        except NotFound:
            return  # gone already: the outcome the caller wanted
    _record(
        actor=actor,
        ref=ref,
        verb="environment.pod.delete",
        changes={"pod": [pod, None]},
        remote_addr=remote_addr,
    )


# --- configuration ------------------------------------------------------------------------------------


@dataclass
class ObjectDiff:
    kind: str
    name: str
    exists: bool
    diff: str = ""


@dataclass
class ConfigPlan:
    request: dict
    overrides: dict
    objects: list[dict] = field(default_factory=list)
    diffs: list[ObjectDiff] = field(default_factory=list)
    guardrails: list = field(default_factory=list)
    changes: dict = field(default_factory=dict)
    # The secret environment variables after the edit; only filled into the Secret when applying.
    secret_values: dict = field(default_factory=dict, repr=False)

    @property
    def diff(self) -> str:
        return "".join(d.diff for d in self.diffs)

    @property
    def changed(self) -> bool:
        return bool(self.changes) or any(d.diff or not d.exists for d in self.diffs)


def config_version_check(environment, version: str | None) -> None:
    """Refuse an edit made on a configuration older than the environment's (None: not checked)."""
    if version is not None and version != config_version(environment.spec):
        raise StateConflict(config_stale_message(environment, version))


def _flat(request: dict, overrides: dict) -> dict:
    return {**request, **{f"overrides.{key}": value for key, value in (overrides or {}).items()}}


def _with_values(obj: dict, values: dict) -> dict:
    return manifests.secret_with_values(obj, values) if obj["kind"] == "Secret" else obj


def config_plan(
    *,
    actor,
    ref: EnvironmentRef,
    request: dict,
    overrides: dict | None = None,
    secret_env_vars: dict | None = None,
    version: str | None = None,
) -> ConfigPlan:
    """Validate an edit and compare it with the live objects (server-side dry run); changes nothing.

    ``request`` holds the fields to change (merged over the current request); ``overrides``, when given,
    replaces the guardrail overrides; ``secret_env_vars`` are changes to the secret environment variables
    (see secret_env.merge). ``version``, when given, is the configuration version the editor loaded:
    StateConflict, naming what changed, if it is no longer the current one. Raises ValidationError with
    field errors for an invalid edit. The diff shows secret values only as fingerprints."""
    check(actor, Action.EDIT_CONFIG, ref.project)
    config_version_check(ref.environment, version)
    if not isinstance(request, dict):
        raise ValidationError({"request": _("Expected an object of fields.")})
    if overrides is not None and not isinstance(overrides, dict):
        raise ValidationError({"overrides": _("Expected an object of knob values.")})
    current = ref.environment.spec or {}
    old_request = workload_fields.with_switches_off(
        dict(current.get("request") or {}), workload_fields.Use.CONFIG
    )
    old_overrides = dict(current.get("overrides") or {})
    refuse_prod_image(environment=ref.environment.environment, request=request, current=old_request)
    old_secrets = secret_env.load(ref.environment.secret_env)
    new_secrets = secret_env.merge(old_secrets, secret_env_vars)
    new_request = secret_env.with_names({**old_request, **request}, new_secrets)
    new_overrides = old_overrides if overrides is None else dict(overrides)
    log_pipeline = cluster_log_pipeline(ref.environment.cluster)
    # The Secret's values: the variables (stored with the change) and the pipeline's URL (read again at
    # apply time, never stored).
    values = {**new_secrets, **log_secret_values(request=new_request, log_pipeline=log_pipeline)}
    spec = build_spec(
        project=ref.project,
        environment=ref.environment.environment,
        cluster=ref.environment.cluster,
        request=new_request,
        overrides=new_overrides,
        secret_env_digest=secret_env.digest(values),
        log_pipeline=log_pipeline,
    )
    rendered = manifests.render(spec)
    plan = ConfigPlan(
        request=new_request,
        overrides=new_overrides,
        guardrails=rendered.guardrails,
        changes=changes_between(_flat(old_request, old_overrides), _flat(new_request, new_overrides)),
        secret_values=new_secrets,
    )
    secret_diff = secret_env.changes(old_secrets, new_secrets)
    if secret_diff:
        plan.changes["secret_env_changes"] = secret_diff
    try:
        with ref.client() as client:
            for obj in objects_to_apply(spec, rendered, had_secrets=had_env_secret(ref.environment)):
                kind, name = obj["kind"], obj["metadata"]["name"]
                desired = keep_live_fields(client, obj)
                live = client.get(kind, ref.namespace, name)
                after = client.apply_dry_run(_with_values(desired, values))
                plan.objects.append(desired)
                diff = ""
                if live is not None:
                    diff = object_diff(live, after, kind=kind, name=name, after_label="after the change")
                plan.diffs.append(ObjectDiff(kind=kind, name=name, exists=live is not None, diff=diff))
    except Invalid as exc:
        raise _kube_error(exc) from exc
    return plan


# --- changes made by the delivery workflows (deploys) -------------------------------------------------


def environment_record_provisioned(
    *,
    project: Project,
    environment: str,
    cluster: Cluster,
    request: dict,
    overrides: dict,
    secret_env_stored: str,
    live_objects: list,
    at: datetime,
) -> ProjectEnvironment:
    """Remember what an onboarding run applied: where the environment runs and its configuration.

    ``secret_env_stored`` is the encrypted field's value as the ticket keeps it. Runs in the caller's
    transaction (the ticket's status change), so the two are saved together or not at all."""
    env, _created = ProjectEnvironment.objects.select_for_update().get_or_create(
        project=project, environment=environment
    )
    env.cluster = cluster
    env.namespace = namespace_for(
        project=project.name, environment=environment, template=cluster.namespace_template
    )
    env.spec = {"request": request, "overrides": overrides}
    env.secret_env = secret_env_stored
    env.live_objects = live_objects
    env.provisioned_at = at
    env.save()
    # Queued on commit and never calling Grafana here: a Grafana outage cannot block onboarding.
    from clusters.services.dashboards import dashboard_request_sync

    dashboard_request_sync(environment=env, reason="environment activated")
    from clusters.services.alert_rules import alert_rules_request_apply

    alert_rules_request_apply(environment=env, reason="environment activated")
    return env


@dataclass(frozen=True)
class ImageRollout:
    ok: bool
    message: str
    previous_image: str


@dataclass(frozen=True)
class RunningImage:
    image: str
    rolled_out: bool  # every replica runs the current template and is available


def environment_running_image(*, environment: ProjectEnvironment) -> RunningImage | None:
    """What the environment's Deployment runs now, read from the cluster; None without a Deployment.
    A run that lost its worker reconciles with this before it is failed."""
    from integrations.kubernetes.client import KubeClient

    with KubeClient.from_cluster(environment.cluster) as client:
        live = client.get("Deployment", environment.namespace, environment.project.name)
    if live is None:
        return None
    containers = live["spec"]["template"]["spec"]["containers"]
    image = next((c.get("image", "") for c in containers if c["name"] == manifests.CONTAINER_NAME), "")
    status, replicas = live.get("status") or {}, live["spec"].get("replicas", 1)
    rolled_out = (
        status.get("observedGeneration", 0) >= live["metadata"].get("generation", 0)
        and status.get("updatedReplicas", 0) >= replicas
        and status.get("availableReplicas", 0) >= replicas
        and status.get("replicas", 0) <= replicas  # no old pod left
    )
    return RunningImage(image=image, rolled_out=rolled_out)


def environment_set_image(*, environment: ProjectEnvironment, image: str, on_progress) -> ImageRollout:
    """Set the running Deployment's image and follow the rollout (a release or a rollback deploying).

    ``on_progress`` receives each rollout state; transient cluster errors propagate for the caller's
    task to retry."""
    from integrations.kubernetes.client import KubeClient

    name = environment.project.name
    with KubeClient.from_cluster(environment.cluster) as client:
        live = client.get("Deployment", environment.namespace, name)
        if live is None:
            return ImageRollout(
                ok=False,
                message=_("The Deployment %(ns)s/%(name)s does not exist; re-run the onboarding ticket.")
                % {"ns": environment.namespace, "name": name},
                previous_image="",
            )
        containers = live["spec"]["template"]["spec"]["containers"]
        container = manifests.CONTAINER_NAME
        previous = next((c.get("image", "") for c in containers if c["name"] == container), "")
        client.set_image(environment.namespace, name, container, image)
        deadline = int(live["spec"].get("progressDeadlineSeconds") or 600) + 60
        selector = ",".join(
            f"{k}={v}" for k, v in (live["spec"]["selector"].get("matchLabels") or {}).items()
        )
        outcome = client.wait_for_deployment(
            environment.namespace,
            name,
            timeout=deadline,
            on_progress=on_progress,
            check=partial(_failing_new_pods, client, environment.namespace, selector, container, image),
            check_seconds=settings.RELEASE_POD_CHECK_SECONDS,
        )
    if outcome.succeeded:
        return ImageRollout(ok=True, message="", previous_image=previous)
    if outcome.reason == NEW_PODS_FAILING:
        return ImageRollout(ok=False, message=outcome.message, previous_image=previous)
    return ImageRollout(
        ok=False, message=f"{outcome.reason or outcome.state}: {outcome.message}", previous_image=previous
    )


NEW_PODS_FAILING = "NewPodsFailing"


def _failing_new_pods(client, namespace: str, selector: str, container: str, image: str):
    """A failed rollout when a pod running the new image crash-loops or was OOMKilled, else None.

    The rollout's new pods are the ones whose container runs ``image`` (what the release just set);
    the old ReplicaSet's pods may fail too, but that is not this release's doing."""
    from integrations.kubernetes.client import Rollout, RolloutOutcome

    pods = client.list_objects("Pod", namespace, label_selector=selector).get("items") or []
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("name", "")):
        containers = (pod.get("spec") or {}).get("containers") or []
        if not any(c.get("name") == container and c.get("image") == image for c in containers):
            continue
        cause = crash_loop_cause(pod, restart_threshold=settings.RELEASE_CRASHLOOP_RESTARTS)
        if cause:
            return RolloutOutcome(Rollout.FAILED, reason=NEW_PODS_FAILING, message=cause)
    return None
