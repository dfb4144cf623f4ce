from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ObservabilityConfig(AppConfig):
    name = "observability"
    verbose_name = _("Observability")

    def ready(self):
        from observability import events, revocation  # noqa: F401 (connects the signal receivers)

        events.register_stream_kind("user", lambda user, user_id: user.pk == user_id)
