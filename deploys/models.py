from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from deploys.choices import (
    ACTIVE_RELEASE_STATUSES,
    ACTIVE_ROLLOUT_STATUSES,
    OPEN_TICKET_STATUSES,
    RELEASE_TRANSITIONS,
    ROLLOUT_TRANSITIONS,
    TICKET_TRANSITIONS,
    DeploymentKind,
    DeploymentOutcome,
    ReleaseStatus,
    RolloutStatus,
    TicketStatus,
    VerificationStatus,
)
from observability.events import cluster_stream
from opsportal.runs import Run
from opsportal.secrets import EncryptedTextField
from projects.choices import Environment, Language


class OnboardingTicket(Run):
    """A request to run a project in an environment; ops approve it and the portal provisions it.

    Its run is the provisioning: each approval (or retry) gives it a new run token."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="tickets")
    environment = models.CharField(_("environment"), max_length=8, choices=Environment.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=TicketStatus.choices, default=TicketStatus.DRAFT
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # What the developer asked for: the WorkloadSpec fields that are theirs to choose.
    request = models.JSONField(_("request"), default=dict)
    # The requested secret environment variables, JSON {NAME: value} (see clusters.workload.secret_env); the
    # request holds only their names.
    secret_env = EncryptedTextField(_("secret environment variables"), blank=True, default="")
    # Guardrail defaults that ops changed for this ticket, by knob name.
    overrides = models.JSONField(_("overrides"), default=dict, blank=True)
    cluster = models.ForeignKey(
        "clusters.Cluster", on_delete=models.PROTECT, null=True, blank=True, related_name="tickets"
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(_("rejection reason"), blank=True)
    # Empty until the first approval: a draft has no run yet.
    run_token = models.UUIDField(null=True, blank=True, editable=False)
    error_causes = models.JSONField(default=list, blank=True)
    live_objects = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    TRANSITIONS = TICKET_TRANSITIONS
    RUNNING_STATUSES = frozenset({TicketStatus.APPROVED, TicketStatus.PROVISIONING})
    FINAL_STATUSES = frozenset({TicketStatus.ACTIVE, TicketStatus.FAILED})
    FAILED_STATUS = TicketStatus.FAILED
    EVENT_NAME = EVENT_KEY = "ticket"

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "environment"],
                condition=Q(status__in=sorted(OPEN_TICKET_STATUSES)),
                name="one_open_ticket_per_environment",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.project}/{self.environment}"

    def run_label(self) -> str:
        return gettext("Ticket #%(id)s") % {"id": self.pk}

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TICKET_STATUSES


class BuildRecipe(models.Model):
    """One version of a language's build: the generic Dockerfile and the Jenkins build shell.

    Editing makes a new version; the newest version of a language is the one in use."""

    language = models.CharField(_("language"), max_length=16, choices=Language.choices)
    version = models.PositiveIntegerField(_("version"))
    dockerfile = models.TextField(_("Dockerfile template"))
    build_shell = models.TextField(_("build shell"))
    comment = models.CharField(_("comment"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["language", "-version"]
        constraints = [models.UniqueConstraint(fields=["language", "version"], name="unique_recipe_version")]

    def __str__(self) -> str:
        return f"{self.language} v{self.version}"


class BuiltRun(Run):
    """The columns of a run that tags a GitLab commit and builds it into an image through the release
    pipeline (services/builds.py): releases and log proxy rollouts."""

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    commit_sha = models.CharField(_("commit"), max_length=64, blank=True)
    # The version: a timestamp plus the releaser's id. It is the git tag and the image tag.
    version = models.CharField(_("version"), max_length=64)
    recipe = models.ForeignKey(BuildRecipe, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    image_repository = models.CharField(_("image repository"), max_length=255, blank=True)
    image_digest = models.CharField(_("image digest"), max_length=80, blank=True)
    jenkins_job = models.CharField(max_length=255, blank=True)
    jenkins_queue_id = models.PositiveIntegerField(null=True, blank=True)
    jenkins_build = models.PositiveIntegerField(null=True, blank=True)
    # When the build was queued in Jenkins; the build's timeout counts from here.
    build_started_at = models.DateTimeField(null=True, blank=True)
    # How many looks at the running build were taken; a poll message carries the number it expects, so
    # a redelivered or duplicate poll finds it moved on and does nothing.
    build_polls = models.PositiveIntegerField(default=0)
    console = models.TextField(blank=True)
    console_offset = models.PositiveBigIntegerField(default=0)

    class Meta:
        abstract = True

    @property
    def image(self) -> str:
        return f"{self.image_repository}@{self.image_digest}" if self.image_digest else ""


class Release(BuiltRun):
    """A release of a project to one environment: one run, stepped through by several tasks.

    Test releases are tagged in GitLab, built by Jenkins into an image and deployed by digest.
    Production releases are promotions: they deploy the digest of a confirmed test release."""

    project = models.ForeignKey("projects.Project", on_delete=models.CASCADE, related_name="releases")
    environment = models.CharField(_("environment"), max_length=8, choices=Environment.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=ReleaseStatus.choices, default=ReleaseStatus.SUBMITTED
    )
    description = models.CharField(_("description"), max_length=500, blank=True)
    branch = models.CharField(_("branch"), max_length=255, blank=True)
    # The commit's own time (GitLab's committed_date), read when the release is tagged: where the lead
    # time for changes (DORA) starts. Null for releases tagged before it was recorded.
    committed_at = models.DateTimeField(_("committed"), null=True, blank=True)
    promoted_from = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="promotions"
    )
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Post-release verification: the verdict, and the numbers it was drawn from (error ratio and p95
    # latency of the new version and of the baseline, request rates, the window).
    verification_status = models.CharField(
        _("verification"), max_length=24, choices=VerificationStatus.choices, default="", blank=True
    )
    verification = models.JSONField(default=dict, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    # The Apollo change set the release carries for its environment: a JSON list of {namespace, key,
    # value (null: delete), comment}, encrypted because values may be secrets. A promotion copies its
    # test release's set unchanged.
    config_changes = EncryptedTextField(_("configuration changes"), blank=True, default="")
    # Per namespace the change set touched: the Apollo release current before it was applied and the
    # release it made ({"before": id|null, "after": id}). "before" is written before Apollo is called, so
    # a resumed deploy step knows whether its own release already happened and never applies twice.
    config_applied = models.JSONField(default=dict, blank=True)
    # Per namespace of the project's Apollo settings, the Apollo release id the release ran with (null:
    # never released); what a rollback to this release restores.
    config_releases = models.JSONField(default=dict, blank=True)

    TRANSITIONS = RELEASE_TRANSITIONS
    RUNNING_STATUSES = ACTIVE_RELEASE_STATUSES
    FINAL_STATUSES = frozenset({ReleaseStatus.DEPLOYED, ReleaseStatus.FAILED, ReleaseStatus.CANCELLED})
    FAILED_STATUS = ReleaseStatus.FAILED
    EVENT_NAME = EVENT_KEY = "release"

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "environment"],
                condition=Q(status__in=sorted(ACTIVE_RELEASE_STATUSES)),
                name="one_active_release_per_environment",
            )
        ]

    def __str__(self) -> str:
        return f"{self.project} {self.version} ({self.environment})"

    def run_label(self) -> str:
        return gettext("Release %(version)s") % {"version": self.version}

    def event_payload(self) -> dict:
        return {**super().event_payload(), "environment": self.environment}

    is_active = Run.is_running  # the name the release pages use


class DeploymentRecord(models.Model):
    """Each time an image is put on a project environment's Deployment: by a release, a promotion or a
    rollback. This is the environment's history and what rollbacks choose from."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="deployment_records"
    )
    environment = models.CharField(_("environment"), max_length=8, choices=Environment.choices)
    kind = models.CharField(_("kind"), max_length=16, choices=DeploymentKind.choices)
    release = models.ForeignKey(Release, on_delete=models.PROTECT, related_name="deployments")
    image = models.CharField(_("image"), max_length=400)
    previous_image = models.CharField(_("previous image"), max_length=400, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=DeploymentOutcome.choices, default=DeploymentOutcome.RUNNING
    )
    message = models.TextField(blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.image} → {self.project}/{self.environment}"


class LogProxyRollout(BuiltRun):
    """One deployment of the log proxy to a cluster's log pipeline: the proxy's source (the GitLab project
    LOGPROXY_GIT_PROJECT) tagged and built by the release pipeline's recipe for Python, then its objects
    applied in the pipeline's namespace and the rollout followed. It belongs to no project: it is announced
    on the cluster's stream, which only ops may read."""

    pipeline = models.ForeignKey("clusters.LogPipeline", on_delete=models.CASCADE, related_name="rollouts")
    status = models.CharField(
        _("status"), max_length=16, choices=RolloutStatus.choices, default=RolloutStatus.QUEUED
    )
    git_project = models.CharField(_("source project"), max_length=255)
    branch = models.CharField(_("branch"), max_length=255)
    # What was applied (kind/name of each object) and the replicas the rollout ended with.
    applied = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    TRANSITIONS = ROLLOUT_TRANSITIONS
    RUNNING_STATUSES = ACTIVE_ROLLOUT_STATUSES
    FINAL_STATUSES = frozenset({RolloutStatus.DEPLOYED, RolloutStatus.FAILED})
    FAILED_STATUS = RolloutStatus.FAILED
    EVENT_NAME = "logproxy-rollout"
    EVENT_KEY = "rollout"
    PROJECT_ID = None
    project = None  # runs.locked() sets it; audits of a rollout name no project

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pipeline"],
                condition=Q(status__in=sorted(ACTIVE_ROLLOUT_STATUSES)),
                name="one_active_rollout_per_pipeline",
            )
        ]

    def __str__(self) -> str:
        return f"log proxy {self.version} on pipeline {self.pipeline_id}"

    def run_label(self) -> str:
        return gettext("Log proxy rollout %(version)s") % {"version": self.version}

    def event_stream(self) -> str:
        return cluster_stream(self.pipeline.cluster_id)

    def event_payload(self) -> dict:
        return {**super().event_payload(), "pipeline": self.pipeline_id}
