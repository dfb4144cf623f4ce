"""A project's Apollo settings and the releases the portal made (or saw) in its namespaces.

Apollo's Open API has no list of releases, only the latest active one, so the history a page shows and
a rollback walks is the one the portal keeps here."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from opsportal.secrets import EncryptedTextField
from projects.choices import Environment


def default_namespaces() -> list[str]:
    return ["application"]


class ApolloSettings(models.Model):
    """Where a project's configuration lives in Apollo, and the Open API token the portal uses for it.

    The token is write-only: stored encrypted, never shown back (pages say "set" or "not set")."""

    project = models.OneToOneField(
        "projects.Project", on_delete=models.CASCADE, related_name="apollo_settings"
    )
    app_id = models.CharField(_("Apollo app id"), max_length=128)
    cluster = models.CharField(_("Apollo cluster"), max_length=64, default="default")
    namespaces = models.JSONField(_("namespaces"), default=default_namespaces)
    test_env = models.CharField(_("Apollo environment for test"), max_length=32, default="FAT")
    prod_env = models.CharField(_("Apollo environment for production"), max_length=32, default="PRO")
    token = EncryptedTextField(_("Open API token"), blank=True, default="")
    # Production edits are ops' unless ops let the project's owners do them too.
    owner_may_edit_prod = models.BooleanField(_("owners may edit production"), default=False)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("Apollo settings")
        verbose_name_plural = _("Apollo settings")

    def __str__(self) -> str:
        return f"Apollo {self.app_id} ({self.project})"

    def apollo_env(self, environment: str) -> str:
        return self.prod_env if environment == Environment.PROD else self.test_env


class ConfigRelease(models.Model):
    """An Apollo release of one namespace: made through the portal, or found current in Apollo when the
    portal rolled it back (``by_portal`` false). Kept per app, cluster and Apollo environment, so a
    change of the settings does not mix another app's releases into the history."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="config_releases")
    environment = models.CharField(_("environment"), max_length=8, choices=Environment.choices)
    apollo_env = models.CharField(max_length=32)
    app_id = models.CharField(max_length=128)
    cluster = models.CharField(max_length=64)
    namespace = models.CharField(_("namespace"), max_length=128)
    release_id = models.BigIntegerField(_("Apollo release id"))
    title = models.CharField(_("title"), max_length=64)
    comment = models.CharField(_("comment"), max_length=256, blank=True)
    released_by = models.CharField(_("released by"), max_length=150)
    released_at = models.DateTimeField(_("released at"), null=True, blank=True)
    by_portal = models.BooleanField(default=True)
    rolled_back_at = models.DateTimeField(_("rolled back at"), null=True, blank=True)
    rolled_back_by = models.CharField(_("rolled back by"), max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "apollo_env", "app_id", "cluster", "namespace", "release_id"],
                name="unique_config_release",
            )
        ]
        ordering = ["-release_id"]
        verbose_name = _("configuration release")
        verbose_name_plural = _("configuration releases")

    def __str__(self) -> str:
        return f"{self.namespace}@{self.apollo_env} #{self.release_id} {self.title}"
