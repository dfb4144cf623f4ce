from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AlertingConfig(AppConfig):
    name = "alerting"
    verbose_name = _("Alerting")

    def ready(self) -> None:
        # The receivers of opsportal.notices (workflow notices sent by lower layers) and of the alerts'
        # own transitions connect here, so the apps that send them never import this one.
        from alerting import receivers  # noqa: F401
