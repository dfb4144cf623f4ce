from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from projects.choices import Language, Role

# Project names become Kubernetes object names, image names and Jenkins job names.
dns1123_label = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
    _("Use 1–63 lowercase letters, digits and '-', starting and ending with a letter or digit."),
)


class Project(models.Model):
    name = models.CharField(_("name"), max_length=63, unique=True, validators=[dns1123_label])
    description = models.TextField(_("description"), blank=True)
    language = models.CharField(_("language"), max_length=16, choices=Language.choices, default=Language.JAVA)
    gitlab_repository = models.CharField(
        _("GitLab repository"), max_length=255, blank=True, help_text=_("Path such as group/service.")
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="owned_projects",
        verbose_name=_("owner"),
    )
    # Release policy.
    require_tester_confirmation = models.BooleanField(
        _("production needs a tester's confirmation"),
        default=True,
        help_text=_(
            "A test release must be confirmed by a tester (or QA), not by the person who released it."
        ),
    )
    auto_rollback = models.BooleanField(_("roll back automatically when a rollout fails"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("project")
        verbose_name_plural = _("projects")

    def __str__(self) -> str:
        return self.name


class ProjectMember(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    # An explicit grant: production terminals are otherwise for ops only.
    prod_terminal = models.BooleanField(_("may open production terminals"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="unique_project_member")]
        ordering = ["project", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} @ {self.project} ({self.role})"


class UserProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES, blank=True)

    def __str__(self) -> str:
        return f"profile of {self.user}"
