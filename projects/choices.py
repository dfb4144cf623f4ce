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


OPS_GROUP = "ops"
QA_GROUP = "qa"
