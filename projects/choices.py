from django.db import models
from django.utils.translation import gettext_lazy as _


class Language(models.TextChoices):
    JAVA = "java", _("Java (Maven)")
    GO = "go", _("Go")
    PHP = "php", _("PHP")
    PYTHON = "python", _("Python")
    NODE = "node", _("Node.js")


class Environment(models.TextChoices):
    TEST = "test", _("Test")
    PROD = "prod", _("Production")


class Role(models.TextChoices):
    """Project roles, from most to least privileged."""

    OWNER = "owner", _("Owner")
    DEVELOPER = "developer", _("Developer")
    TESTER = "tester", _("Tester")
    VIEWER = "viewer", _("Viewer")


class GrantEnd(models.TextChoices):
    """Why a production terminal grant stopped giving access."""

    EXPIRED = "expired", _("Expired")
    REVOKED = "revoked", _("Revoked")
    # Ops granted the same person again: the new grant carries on, the old row stays as history.
    REPLACED = "replaced", _("Replaced")


OPS_GROUP = "ops"
QA_GROUP = "qa"
