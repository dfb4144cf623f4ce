from celery import shared_task

from clusters.services import config_changes, terminal
from opsportal.tasks import run_step


@shared_task(time_limit=600, soft_time_limit=570)
def prune_terminal_recordings() -> None:
    terminal.recordings_prune()


@shared_task(time_limit=120, soft_time_limit=110)
def reap_stale_terminal_sessions() -> None:
    terminal.sessions_reap_stale()


# Longer than the rollout wait (OPSPORTAL_ROLLOUT_TIMEOUT) plus the applies before it.
@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def apply_config_change(self, *, change_id: int, run_token: str) -> None:
    run_step(
        self,
        config_changes.config_change_apply,
        config_changes.config_change_fail,
        change_id=change_id,
        run_token=run_token,
    )


@shared_task(time_limit=120, soft_time_limit=110)
def fail_stuck_config_changes() -> None:
    # Longer than apply_config_change's hard limit, so only abandoned runs are caught.
    config_changes.config_changes_fail_stuck(older_than_seconds=900 + 300)
