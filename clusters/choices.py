from django.db import models
from django.utils.translation import gettext_lazy as _


class Environment(models.TextChoices):
    TEST = "test", _("Test")
    PROD = "prod", _("Production")


class AuthType(models.TextChoices):
    KUBECONFIG = "kubeconfig", _("Kubeconfig")
    TOKEN = "token", _("Bearer token")


DEFAULT_NAMESPACE_TEMPLATE = "{project}-{environment}"
