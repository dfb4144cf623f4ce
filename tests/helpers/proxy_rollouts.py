"""Log proxy rollouts in the tests: the steps applied in this process, in order, as a worker takes them."""

import time

from deploys.choices import RolloutStatus
from deploys.models import LogProxyRollout
from deploys.tasks import log_proxy_apply, log_proxy_build, log_proxy_build_poll, log_proxy_tag

STEP_OF_STATUS = {
    RolloutStatus.QUEUED: log_proxy_tag,
    RolloutStatus.TAGGING: log_proxy_tag,
    RolloutStatus.BUILDING: log_proxy_build,
    RolloutStatus.BUILT: log_proxy_apply,
    RolloutStatus.APPLYING: log_proxy_apply,
}


def run_rollout(
    rollout: LogProxyRollout, *, poll_every: float = 0.2, timeout: float = 300
) -> LogProxyRollout:
    """Take each step the rollout waits for until it ends. Applied in-process, a step cannot queue its
    successor (on_commit never fires inside a test's transaction), so this loop stands in for the broker;
    the build is followed by polls with their countdowns shortened to ``poll_every``."""
    deadline = time.monotonic() + timeout
    ids = {"rollout_id": rollout.pk, "run_token": str(rollout.run_token)}
    rollout.refresh_from_db()
    while rollout.is_running:
        assert time.monotonic() < deadline, (
            f"rollout {rollout.pk} still {rollout.status} after {timeout:.0f}s"
        )
        if rollout.status == RolloutStatus.BUILDING and (rollout.jenkins_queue_id or rollout.jenkins_build):
            time.sleep(poll_every)
            log_proxy_build_poll.apply(kwargs={**ids, "poll": rollout.build_polls})
        else:
            STEP_OF_STATUS[rollout.status].apply(kwargs=ids)
        rollout.refresh_from_db()
    return rollout
