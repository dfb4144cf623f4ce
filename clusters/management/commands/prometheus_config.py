"""`manage.py prometheus_config [--print | --apply]`: show or apply the portal-managed Prometheus config."""

from django.core.management.base import BaseCommand, CommandError

from clusters.choices import PrometheusConfigStatus
from clusters.services.alert_rules import alert_rules_apply_all
from clusters.services.monitoring_config import (
    ConfigRejected,
    prometheus_config_apply,
    prometheus_config_render,
)


class Command(BaseCommand):
    help = (
        "Print the Prometheus configuration the portal renders (--print), or write, check and reload it "
        "(--apply; needs PROMETHEUS_CONFIG_FILE), with every environment's alert rule file. Exits non-zero "
        "when the apply failed."
    )

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--apply", action="store_true", help="write, check with promtool and reload")
        action.add_argument("--print", action="store_true", help="print the rendered configuration (default)")
        parser.add_argument("--reason", default="manage.py prometheus_config", help="recorded with the apply")

    def handle(self, *args, **options):
        if not options["apply"]:
            try:
                self.stdout.write(prometheus_config_render(), ending="")
            except ConfigRejected as exc:
                raise CommandError(str(exc)) from exc
            return
        from django.conf import settings

        if not settings.PROMETHEUS_CONFIG_FILE:
            raise CommandError(
                "PROMETHEUS_CONFIG_FILE is not set: the portal does not manage Prometheus' file."
            )
        state = prometheus_config_apply(reason=options["reason"])
        if state.status != PrometheusConfigStatus.APPLIED:
            raise CommandError(f"{state.get_status_display()}: {state.error}")
        target = settings.PROMETHEUS_CONFIG_FILE
        # A Prometheus set up anew (or a rules directory emptied) gets the environments' rules back.
        written = alert_rules_apply_all(reason=options["reason"])
        failed = {name or "reload": error for name, error in written.items() if error}
        if failed:
            raise CommandError(f"Alert rules not applied: {failed}")
        self.stdout.write(
            f"Prometheus configuration applied ({state.config_sha256[:12]}) to {target}, "
            f"with the alert rules of {len(written)} environment(s)"
        )
