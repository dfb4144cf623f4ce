"""The rollout progress reporter the workflows share (the run mechanics themselves are in opsportal.runs)."""

from collections.abc import Callable

from django.utils.translation import gettext as _


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
