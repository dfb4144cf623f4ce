from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DeploysConfig(AppConfig):
    name = "deploys"
    verbose_name = _("Deploys")
