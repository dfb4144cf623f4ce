"""What is wrong with a pod, read from the status its kubelet wrote, and what to do about it.

One diagnosis serves the environment page (a flag on the pod's row, live) and the release's deploy step
(a rollout whose new pods crash-loop fails with the same words instead of waiting out its deadline).
Everything here reads the standard pod status fields only: restartCount, state.waiting/terminated
(reason, message, exitCode), lastState.terminated, the Ready condition, and the container's spec
(probes, limits) to tell which lesson applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

# Exit codes of a process ended by SIGKILL / SIGTERM: the kubelet stopped it (a failed probe); it did
# not exit on its own.
_KILLED_EXIT_CODES = (137, 143)
_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")
_CREATE_REASONS = ("CreateContainerError", "CreateContainerConfigError", "RunContainerError")


@dataclass(frozen=True)
class PodProblem:
    """A pod visibly in trouble: ``reason`` as Kubernetes says it, what happened, and the next step."""

    reason: str  # CrashLoopBackOff | OOMKilled | ImagePullBackOff | CreateContainerError | NotReady …
    container: str
    restarts: int
    exit_code: int | None
    message: str  # the kubelet's own words (waiting/terminated message), may be ""
    hint: str  # the next step, translated
    severity: str  # "danger" (the pod cannot run) | "warning" (runs, not serving)

    def as_dict(self) -> dict:
        return asdict(self)


def _spec_container(pod: dict, name: str) -> dict:
    containers = (pod.get("spec") or {}).get("containers") or []
    return next((c for c in containers if c.get("name") == name), {})


def _crash_hint(container_spec: dict, exit_code: int | None) -> str:
    if exit_code in _KILLED_EXIT_CODES:
        if container_spec.get("startupProbe"):
            return _(
                "The start-up probe failed and the container was killed → raise the start-up budget "
                "(startup_seconds) or check the health path."
            )
        if container_spec.get("livenessProbe"):
            return _(
                "The liveness probe killed the container before it finished starting (no start-up probe) "
                "→ turn the start-up probe back on or raise the start-up budget."
            )
    return _("The process exits on its own → read the previous container's log (Logs, “Previous container”).")


def _oom_hint(container_spec: dict) -> str:
    limit = ((container_spec.get("resources") or {}).get("limits") or {}).get("memory", "")
    if limit:
        return _("OOMKilled: it used more than its memory limit (%(limit)s) → raise the memory limit.") % {
            "limit": limit
        }
    return _("OOMKilled: the node ran out of memory → set a memory request and limit.")


def _waiting_hint(reason: str) -> str:
    if reason in _PULL_REASONS:
        return _("The image cannot be pulled → check that the release's image exists in the registry.")
    return _("The container cannot be created → check its command and the Secrets it refers to.")


def pod_problem(pod: dict) -> PodProblem | None:
    """The first container in trouble, or None for a pod that runs (or is just starting) normally."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp"):
        return None  # going away on purpose
    ready = next(
        (c.get("status") == "True" for c in status.get("conditions") or [] if c.get("type") == "Ready"), False
    )
    not_ready: PodProblem | None = None
    for item in status.get("containerStatuses") or []:
        name = item.get("name", "")
        spec = _spec_container(pod, name)
        restarts = item.get("restartCount", 0) or 0
        state = item.get("state") or {}
        waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
        last = (item.get("lastState") or {}).get("terminated") or {}
        ended = terminated or last
        exit_code = ended.get("exitCode")
        if terminated.get("reason") == "OOMKilled" or (
            last.get("reason") == "OOMKilled" and not ("running" in state and item.get("ready"))
        ):
            return PodProblem(
                reason="OOMKilled",
                container=name,
                restarts=restarts,
                exit_code=exit_code,
                message=waiting.get("message") or ended.get("message") or "",
                hint=_oom_hint(spec),
                severity="danger",
            )
        reason = waiting.get("reason", "")
        if reason == "CrashLoopBackOff" or (
            terminated and terminated.get("reason") not in ("Completed", None)
        ):
            return PodProblem(
                reason=reason or terminated.get("reason", "Error"),
                container=name,
                restarts=restarts,
                exit_code=exit_code,
                message=waiting.get("message") or ended.get("message") or "",
                hint=_crash_hint(spec, exit_code),
                severity="danger",
            )
        if reason in _PULL_REASONS or reason in _CREATE_REASONS:
            return PodProblem(
                reason=reason,
                container=name,
                restarts=restarts,
                exit_code=None,
                message=waiting.get("message", ""),
                hint=_waiting_hint(reason),
                severity="danger",
            )
        # Started (past any start-up probe) and running, yet not ready: the readiness probe fails.
        if not_ready is None and "running" in state and item.get("started") and not item.get("ready"):
            not_ready = PodProblem(
                reason="NotReady",
                container=name,
                restarts=restarts,
                exit_code=None,
                message="",
                hint=_(
                    "Running but its readiness probe fails, so it gets no traffic → check the health path "
                    "and the probe timeout."
                ),
                severity="warning",
            )
    return not_ready if not ready else None


def crash_loop_cause(pod: dict, *, restart_threshold: int) -> str:
    """Why a release's new pod means the rollout has failed, or "" while it may still come up.

    A container in CrashLoopBackOff that restarted ``restart_threshold`` times or more, or any OOMKilled
    container: waiting longer only restarts it again."""
    problem = pod_problem(pod)
    if problem is None:
        return ""
    if problem.reason == "OOMKilled" or (
        problem.reason == "CrashLoopBackOff" and problem.restarts >= restart_threshold
    ):
        name = (pod.get("metadata") or {}).get("name", "")
        exit_code = "—" if problem.exit_code is None else problem.exit_code
        text = ngettext(
            "%(pod)s: %(reason)s, restarted %(n)s time, last exit %(code)s",
            "%(pod)s: %(reason)s, restarted %(n)s times, last exit %(code)s",
            problem.restarts,
        ) % {
            "pod": name,
            "reason": problem.reason,
            "n": problem.restarts,
            "code": exit_code,
        }
        if problem.message:
            text += f": {problem.message}"
        return f"{text} — {problem.hint}"
    return ""
