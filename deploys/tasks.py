"""Celery tasks: thin wrappers that take ids and run one service step (see opsportal.tasks.run_step).

Services import these tasks at module level to queue them; a task imports its service inside its body,
so the two modules never import each other at load time."""

from celery import shared_task
from django.conf import settings

from opsportal.runs import stuck_after
from opsportal.tasks import run_step


@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def provision_ticket(self, *, ticket_id: int, run_token: str) -> None:
    from deploys.services.tickets import ticket_provision, ticket_provision_failed

    run_step(self, ticket_provision, ticket_provision_failed, ticket_id=ticket_id, run_token=run_token)


@shared_task(time_limit=120, soft_time_limit=110)
def fail_stuck_tickets() -> None:
    from deploys.services.tickets import tickets_fail_stuck

    tickets_fail_stuck(older_than_seconds=stuck_after(provision_ticket))


@shared_task(time_limit=60, soft_time_limit=50)
def resume_stale_tickets() -> None:
    from deploys.services.tickets import tickets_resume_stale

    tickets_resume_stale()


@shared_task(bind=True, time_limit=300, soft_time_limit=280, max_retries=None)
def release_tag(self, *, release_id: int, run_token: str) -> None:
    from deploys.services.releases import release_fail
    from deploys.services.releases import release_tag as tag

    run_step(self, tag, release_fail, release_id=release_id, run_token=run_token)


# Starts (or finds) the Jenkins build and hands it to release_build_poll: nothing here waits for the build.
@shared_task(bind=True, time_limit=300, soft_time_limit=280, max_retries=None)
def release_build(self, *, release_id: int, run_token: str) -> None:
    from deploys.services.releases import release_build as build
    from deploys.services.releases import release_fail

    run_step(self, build, release_fail, release_id=release_id, run_token=run_token)


# One look at a running build; it queues the next look with a countdown, so no worker waits for Jenkins.
@shared_task(bind=True, time_limit=120, soft_time_limit=110, max_retries=None)
def release_build_poll(self, *, release_id: int, run_token: str, poll: int) -> None:
    from deploys.services.releases import release_build_poll as build_poll
    from deploys.services.releases import release_fail

    def give_up(*, release_id: int, run_token: str, poll: int, error: str) -> None:
        release_fail(release_id=release_id, run_token=run_token, error=error)

    run_step(self, build_poll, give_up, release_id=release_id, run_token=run_token, poll=poll)


@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def release_deploy(self, *, release_id: int, run_token: str) -> None:
    from deploys.services.releases import release_deploy as deploy
    from deploys.services.releases import release_fail

    run_step(self, deploy, release_fail, release_id=release_id, run_token=run_token)


@shared_task(bind=True, time_limit=120, soft_time_limit=110, max_retries=3)
def release_stop_build(self, *, release_id: int, run_token: str) -> None:
    from deploys.services.releases import release_stop_build as stop_build

    run_step(self, stop_build, lambda **_: None, release_id=release_id, run_token=run_token)


@shared_task(time_limit=120, soft_time_limit=110)
def fail_stuck_releases() -> None:
    from deploys.services.releases import releases_fail_stuck

    # A building release's heartbeat is its polls, so the build's length does not enter the threshold.
    steps = (release_tag, release_build, release_build_poll, release_deploy)
    releases_fail_stuck(
        older_than_seconds=stuck_after(*steps) + settings.RELEASE_BUILD_POLL_SECONDS,
    )


# The last resort above counts hours; this one notices a killed worker within RUN_STALE_SECONDS.
@shared_task(time_limit=60, soft_time_limit=50)
def resume_stale_releases() -> None:
    from deploys.services.releases import releases_resume_stale

    releases_resume_stale()


@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def rollback_deploy(self, *, record_id: int) -> None:
    from deploys.services.releases import rollback_deploy as deploy
    from deploys.services.releases import rollback_failed

    run_step(self, deploy, rollback_failed, record_id=record_id)


# The check at the end of a release's verification window; it queues itself again when it comes early.
@shared_task(bind=True, time_limit=120, soft_time_limit=110, max_retries=None)
def verify_release(self, *, release_id: int) -> None:
    from deploys.services.verification import verification_give_up, verification_run

    run_step(self, verification_run, verification_give_up, release_id=release_id)


@shared_task(time_limit=120, soft_time_limit=110)
def sweep_verifications() -> None:
    from deploys.services.verification import verifications_sweep

    verifications_sweep()


# --- log proxy rollouts (deploys/services/log_proxy.py): the release pipeline's steps for the proxy ---


@shared_task(bind=True, time_limit=300, soft_time_limit=280, max_retries=None)
def log_proxy_tag(self, *, rollout_id: int, run_token: str) -> None:
    from deploys.services.log_proxy import log_proxy_fail
    from deploys.services.log_proxy import log_proxy_tag as tag

    run_step(self, tag, log_proxy_fail, rollout_id=rollout_id, run_token=run_token)


@shared_task(bind=True, time_limit=300, soft_time_limit=280, max_retries=None)
def log_proxy_build(self, *, rollout_id: int, run_token: str) -> None:
    from deploys.services.log_proxy import log_proxy_build as build
    from deploys.services.log_proxy import log_proxy_fail

    run_step(self, build, log_proxy_fail, rollout_id=rollout_id, run_token=run_token)


@shared_task(bind=True, time_limit=120, soft_time_limit=110, max_retries=None)
def log_proxy_build_poll(self, *, rollout_id: int, run_token: str, poll: int) -> None:
    from deploys.services.log_proxy import log_proxy_build_poll as build_poll
    from deploys.services.log_proxy import log_proxy_fail

    def give_up(*, rollout_id: int, run_token: str, poll: int, error: str) -> None:
        log_proxy_fail(rollout_id=rollout_id, run_token=run_token, error=error)

    run_step(self, build_poll, give_up, rollout_id=rollout_id, run_token=run_token, poll=poll)


@shared_task(bind=True, time_limit=900, soft_time_limit=870, max_retries=None)
def log_proxy_apply(self, *, rollout_id: int, run_token: str) -> None:
    from deploys.services.log_proxy import log_proxy_apply_step, log_proxy_fail

    run_step(self, log_proxy_apply_step, log_proxy_fail, rollout_id=rollout_id, run_token=run_token)


@shared_task(time_limit=60, soft_time_limit=50)
def resume_stale_log_proxy_rollouts() -> None:
    from deploys.services.log_proxy import log_proxy_rollouts_resume_stale

    log_proxy_rollouts_resume_stale()


@shared_task(time_limit=120, soft_time_limit=110)
def fail_stuck_log_proxy_rollouts() -> None:
    from deploys.services.log_proxy import log_proxy_rollouts_fail_stuck

    steps = (log_proxy_tag, log_proxy_build, log_proxy_build_poll, log_proxy_apply)
    log_proxy_rollouts_fail_stuck(
        older_than_seconds=stuck_after(*steps) + settings.RELEASE_BUILD_POLL_SECONDS
    )
