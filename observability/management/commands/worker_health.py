"""`python manage.py worker_health --timeout 30`: exit 0 only if a Celery worker ran a probe task sent
through the broker within the timeout (the worker's container health check; see docs/architecture.md)."""

from django.core.management.base import BaseCommand, CommandError

from observability.services import WorkerUnhealthy, worker_health_probe


class Command(BaseCommand):
    help = "Prove that a Celery worker runs tasks: a real round trip through the broker, with a deadline."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
        parser.add_argument(
            "--queue", default=None, help="the queue the worker consumes (default: the default)"
        )

    def handle(self, *args, timeout: float, queue: str | None, **options) -> None:
        if timeout <= 0:
            raise CommandError("--timeout must be positive.")
        try:
            elapsed = worker_health_probe(timeout=timeout, queue=queue)
        except WorkerUnhealthy as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"The worker ran the probe in {elapsed * 1000:.0f} ms.")
