"""The state-change mechanics every workflow on a row shares (tickets, releases, configuration changes):
lock the row, check the transition, record it; and the rollout progress reporter."""

from collections.abc import Callable

from django.utils.translation import gettext as _

from observability.services import audit_record
from opsportal.errors import StateConflict
from projects.models import Project


def locked(model, pk: int):
    """The row, locked for this transaction; its project is read after the lock, not joined into it."""
    obj = model.objects.select_for_update().filter(pk=pk).first()
    if obj is None:
        raise model.DoesNotExist(f"No {model._meta.verbose_name} {pk}.")
    obj.project = Project.objects.get(pk=obj.project_id)
    return obj


def move_status(
    obj,
    to: str,
    *,
    name: str,
    actor,
    verb: str,
    publish: Callable[[], None],
    changes: dict | None = None,
    remote_addr: str | None = None,
) -> None:
    """Check the transition map (the model's can_move_to), save, audit in this transaction, announce."""
    if not obj.can_move_to(to):
        label = obj._meta.get_field("status").choices
        raise StateConflict(
            _("%(name)s is %(status)s; it cannot become %(to)s.")
            % {"name": name, "status": obj.get_status_display(), "to": dict(label).get(to, to)}
        )
    before = obj.status
    obj.status = to
    obj.save()
    audit_record(
        actor=actor,
        verb=verb,
        target=obj,
        project=obj.project,
        changes={"status": [before, to], **(changes or {})},
        remote_addr=remote_addr,
    )
    publish()


def rollout_reporter(progress: Callable[[str], None]) -> Callable:
    """An ``on_progress`` for ``KubeClient.wait_for_deployment`` that logs each new rollout state once."""
    last = {"text": ""}

    def report(rollout) -> None:
        text = _("Rollout: %(message)s (%(ready)s/%(desired)s ready)") % {
            "message": rollout.message,
            "ready": rollout.ready,
            "desired": rollout.desired,
        }
        if text != last["text"]:
            last["text"] = text
            progress(text)

    return report
