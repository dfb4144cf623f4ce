from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from projects.choices import GrantEnd, Language, Role

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
    auto_rollback = models.BooleanField(
        _("roll back automatically when a rollout fails"),
        default=False,
        help_text=_("Also when post-release verification finds that the new version regressed."),
    )
    # The columns added after the first release carry a database default too (db_default), so a row
    # written by code that predates them (a rolling deploy, a migration's historical model) is valid.
    # Post-release verification: the new version's error ratio and p95 latency over the window after its
    # rollout, against the same length of time just before it (the previous version). A regression is a
    # rise beyond both the absolute and the relative threshold, so that noise on a tiny baseline is not one.
    verification_window_seconds = models.PositiveIntegerField(
        _("verification window (seconds)"),
        default=300,
        db_default=300,
        validators=[MinValueValidator(60), MaxValueValidator(3600)],
        help_text=_("How long after a rollout the new version is watched, and the baseline before it."),
    )
    verification_min_requests = models.PositiveIntegerField(
        _("minimum requests to judge a release"),
        default=50,
        db_default=50,
        validators=[MinValueValidator(1), MaxValueValidator(1_000_000)],
        help_text=_('With fewer requests in the window the verdict is "not enough traffic".'),
    )
    verification_error_points = models.FloatField(
        _("error ratio rise (percentage points)"),
        default=2.0,
        db_default=2.0,
        validators=[MinValueValidator(0.1), MaxValueValidator(100)],
    )
    verification_error_factor = models.FloatField(
        _("error ratio rise (times the baseline)"),
        default=2.0,
        db_default=2.0,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
    )
    verification_latency_ms = models.PositiveIntegerField(
        _("p95 latency rise (milliseconds)"),
        default=100,
        db_default=100,
        validators=[MinValueValidator(1), MaxValueValidator(600_000)],
    )
    verification_latency_factor = models.FloatField(
        _("p95 latency rise (times the baseline)"),
        default=1.5,
        db_default=1.5,
        validators=[MinValueValidator(1), MaxValueValidator(100)],
    )
    # The language of the alert and workflow messages sent for this project. Blank: Chinese for production
    # (the ops group chats read Chinese), the portal's default language (LANGUAGE_CODE) for test.
    message_language = models.CharField(
        _("message language"),
        max_length=10,
        default="",
        db_default="",
        choices=settings.LANGUAGES,
        blank=True,
        help_text=_("Blank: Simplified Chinese for production, the portal's default language for test."),
    )
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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="unique_project_member")]
        ordering = ["project", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} @ {self.project} ({self.role})"


class ProdTerminalGrantQuerySet(models.QuerySet):
    def open(self):
        """Not yet ended; possibly past its expiry, which the beat task has not recorded yet."""
        return self.filter(ended_at__isnull=True)

    def active(self, now=None):
        """Grants that give access now. Compared with the clock, never trusting the sweeper."""
        return self.open().filter(expires_at__gt=now or timezone.now())


class ProdTerminalGrant(models.Model):
    """A member's time-limited right to open production terminals, given by ops.

    A shell in a prod pod can read the prod secrets, so this is granted by ops only, for a limited time;
    an expired grant gives no access even before the beat task records its expiry."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="terminal_grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="terminal_grants"
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    granted_at = models.DateTimeField(_("granted at"))
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    end_reason = models.CharField(_("ended because"), max_length=16, choices=GrantEnd.choices, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = ProdTerminalGrantQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "user"],
                condition=models.Q(ended_at__isnull=True),
                name="one_open_terminal_grant",
            )
        ]
        ordering = ["-granted_at", "-id"]
        verbose_name = _("production terminal grant")
        verbose_name_plural = _("production terminal grants")

    def __str__(self) -> str:
        return f"prod terminal for {self.user} @ {self.project}"

    def is_active(self, now=None) -> bool:
        return self.ended_at is None and self.expires_at > (now or timezone.now())

    def remaining_seconds(self, now=None) -> int:
        if self.ended_at is not None:
            return 0
        return max(0, int((self.expires_at - (now or timezone.now())).total_seconds()))


class UserProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    language = models.CharField(_("language"), max_length=10, choices=settings.LANGUAGES, blank=True)
    # The mobile number chat robots mention (DingTalk atMobiles, WeCom mentioned_mobile_list).
    mobile = models.CharField(
        _("mobile number"),
        max_length=20,
        default="",
        db_default="",
        blank=True,
        validators=[
            RegexValidator(
                r"^\+?[0-9]{6,19}$", _("Digits only, optionally with a leading +, 6–20 characters.")
            )
        ],
        help_text=_("Chat robots @-mention you by this number."),
    )

    def __str__(self) -> str:
        return f"profile of {self.user}"
