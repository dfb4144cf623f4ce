"""Actions on a running project environment: restart, scale, delete a pod, and edit its configuration.

Each checks the caller's right with projects.access, talks to the cluster, and records an AuditEvent.
Configuration edits go through the same guarded rendering as onboarding (build_spec → render →
keep_live_fields → server-side apply as "opsportal") and are dry-run here (config_plan), so an object the
apiserver rejects is refused before anything is recorded; clusters.config_changes records the edit and
its task applies it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.selectors.environments import EnvironmentRef, is_own_pod, operate_action
from clusters.workload import manifests, secret_env
from deploys.preview import _comparable, _dump
from deploys.services import build_spec, keep_live_fields, objects_to_apply
from integrations.errors import IntegrationError, Invalid, NotFound
from observability import events
from observability.services import audit_record, changes_between
from projects.access import Action, check

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


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
) -> ConfigPlan:
    """Validate an edit and compare it with the live objects (server-side dry run); changes nothing.

    ``request`` holds the fields to change (merged over the current request); ``overrides``, when given,
    replaces the guardrail overrides; ``secret_env_vars`` are changes to the secret environment variables
    (see secret_env.merge). Raises ValidationError with field errors for an invalid edit. The diff shows
    secret values only as fingerprints."""
    check(actor, Action.EDIT_CONFIG, ref.project)
    if not isinstance(request, dict):
        raise ValidationError({"request": _("Expected an object of fields.")})
    if overrides is not None and not isinstance(overrides, dict):
        raise ValidationError({"overrides": _("Expected an object of knob values.")})
    current = ref.environment.spec or {}
    old_request, old_overrides = dict(current.get("request") or {}), dict(current.get("overrides") or {})
    old_secrets = secret_env.load(ref.environment.secret_env)
    new_secrets = secret_env.merge(old_secrets, secret_env_vars)
    new_request = secret_env.with_names({**old_request, **request}, new_secrets)
    new_overrides = old_overrides if overrides is None else dict(overrides)
    spec = build_spec(
        project=ref.project,
        environment=ref.environment.environment,
        cluster=ref.environment.cluster,
        request=new_request,
        overrides=new_overrides,
        secret_env_digest=secret_env.digest(new_secrets),
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
            for obj in objects_to_apply(spec, rendered, had_secrets=bool(old_secrets)):
                kind, name = obj["kind"], obj["metadata"]["name"]
                desired = keep_live_fields(client, obj)
                live = client.get(kind, ref.namespace, name)
                after = client.apply_dry_run(_with_values(desired, new_secrets))
                plan.objects.append(desired)
                diff = ""
                if live is not None:
                    diff = "".join(
                        difflib.unified_diff(
                            _dump(_comparable(live)).splitlines(keepends=True),
                            _dump(_comparable(after)).splitlines(keepends=True),
                            fromfile=f"live {kind}/{name}",
                            tofile=f"after the change {kind}/{name}",
                        )
                    )
                plan.diffs.append(ObjectDiff(kind=kind, name=name, exists=live is not None, diff=diff))
    except Invalid as exc:
        raise _kube_error(exc) from exc
    return plan
