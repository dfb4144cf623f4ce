import re
import string
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from clusters.choices import (
    ACTIVE_CONFIG_CHANGE_STATUSES,
    CONFIG_CHANGE_TRANSITIONS,
    DEFAULT_NAMESPACE_TEMPLATE,
    AuthType,
    ClusterMonitoring,
    ConfigChangeStatus,
)
from clusters.workload.request import namespace_for
from integrations.eureka import check_service_url
from integrations.kubernetes.config import KubeconfigError, check_server_url, parse_kubeconfig
from opsportal.runs import Run
from opsportal.secrets import EncryptedTextField
from projects.choices import Environment
from projects.models import dns1123_label

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_TEMPLATE_FIELDS = {"project", "environment"}


def validate_api_url(value: str) -> None:
    if "@" in urlsplit(value or "").netloc:
        raise ValidationError(
            _(
                "The API URL must not contain a user name or password (user:pass@); "
                "put the credential in the credential field."
            ),
            code="credentials_in_url",
        )
    try:
        check_server_url(value)
    except KubeconfigError:
        raise ValidationError(
            _("Enter the apiserver address as an http(s) URL, e.g. https://10.0.0.1:6443."), code="invalid"
        ) from None


def validate_namespace_template(value: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        sample = value.format(project="my-service", environment="prod")
    except (ValueError, KeyError, IndexError):
        names, sample = {"?"}, ""
    if not names <= _TEMPLATE_FIELDS or not _DNS1123.match(sample):
        raise ValidationError(
            _(
                "Use only {project} and {environment} with lowercase letters, digits and '-', "
                "so that the result is a valid namespace name."
            ),
            code="invalid",
        )


def validate_eureka_url(value: str) -> None:
    if not value:
        return
    try:
        check_service_url(value)
    except ValueError as exc:
        raise ValidationError(
            _(
                "Enter Eureka's service URL as the services use it, e.g. http://eureka:8761/eureka/ "
                "(%(reason)s). A server that needs credentials is not supported yet."
            )
            % {"reason": exc},
            code="invalid",
        ) from None


def validate_ca_certificate(value: str) -> None:
    try:
        x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        raise ValidationError(
            _("Paste the CA certificate in PEM form (-----BEGIN CERTIFICATE----- …)."), code="invalid"
        ) from None


class Cluster(models.Model):
    name = models.CharField(_("name"), max_length=63, unique=True, validators=[dns1123_label])
    environment = models.CharField(_("environment"), max_length=8, choices=Environment.choices)
    api_url = models.CharField(_("API URL"), max_length=255, validators=[validate_api_url])
    ca_certificate = models.TextField(
        _("CA certificate"),
        blank=True,
        validators=[validate_ca_certificate],
        help_text=_("PEM. Leave empty to use the kubeconfig's CA or the system's trusted roots."),
    )
    auth_type = models.CharField(_("authentication"), max_length=16, choices=AuthType.choices)
    # A kubeconfig (YAML) or a bearer token, encrypted at rest; never shown again once saved.
    credential = EncryptedTextField(_("credential"))
    verify_tls = models.BooleanField(_("verify TLS certificate"), default=True)
    monitoring = models.CharField(
        _("monitoring"), max_length=16, choices=ClusterMonitoring.choices, default=ClusterMonitoring.PORTAL
    )
    namespace_template = models.CharField(
        _("namespace template"),
        max_length=100,
        default=DEFAULT_NAMESPACE_TEMPLATE,
        validators=[validate_namespace_template],
    )
    # Where the cluster's services register (Spring's defaultZone); the environment pages list their
    # instances from it. Empty: no Eureka here.
    eureka_url = models.CharField(
        _("Eureka URL"), max_length=255, blank=True, default="", validators=[validate_eureka_url]
    )
    last_check_at = models.DateTimeField(_("last checked"), null=True, blank=True)
    last_check_ok = models.BooleanField(_("last check passed"), null=True, blank=True)
    last_check_message = models.TextField(_("last check result"), blank=True)
    server_version = models.CharField(_("server version"), max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["environment", "name"]
        verbose_name = _("cluster")
        verbose_name_plural = _("clusters")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        credential = self.credential or ""
        if self.auth_type == AuthType.TOKEN:
            if not credential.strip():
                raise ValidationError({"credential": _("Paste the bearer token.")})
            if any(ch.isspace() for ch in credential.strip()):
                raise ValidationError(
                    {"credential": _("Paste the token only: one line, without 'Bearer ' in front.")}
                )
        elif self.auth_type == AuthType.KUBECONFIG:
            if not credential.strip():
                raise ValidationError({"credential": _("Paste the kubeconfig.")})
            try:
                parse_kubeconfig(credential)
            except KubeconfigError as exc:
                raise ValidationError(
                    {"credential": _("This kubeconfig cannot be used: %(reason)s.") % {"reason": exc}}
                ) from None

    def namespace_for(self, project_name: str) -> str:
        return namespace_for(
            project=project_name, environment=self.environment, template=self.namespace_template
        )


class TerminalSession(models.Model):
    """One web terminal into a pod: who, where, when, how much, and its asciicast v2 recording.

    Rows are written by ``clusters.services.terminal`` only; the recording file is append-only and no page
    or API can change or delete it (the retention task removes old ones and marks the row).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    username = models.CharField(_("user"), max_length=150)
    project = models.ForeignKey(
        "projects.Project", on_delete=models.PROTECT, related_name="terminal_sessions"
    )
    environment = models.CharField(_("environment"), max_length=8, choices=Environment.choices)
    cluster_name = models.CharField(_("cluster"), max_length=63)
    namespace = models.CharField(_("namespace"), max_length=63)
    pod = models.CharField(_("pod"), max_length=253)
    container = models.CharField(_("container"), max_length=63)
    width = models.PositiveIntegerField(default=80)
    height = models.PositiveIntegerField(default=24)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    started_at = models.DateTimeField(_("started"), auto_now_add=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    # Written by the relay every TERMINAL_HEARTBEAT_SECONDS; a stale one means the server holding the
    # session died without closing it (see terminal.sessions_reap_stale).
    last_seen_at = models.DateTimeField(_("last seen"), default=timezone.now)
    end_reason = models.CharField(_("end reason"), max_length=255, blank=True)
    bytes_in = models.BigIntegerField(_("bytes typed"), default=0)
    bytes_out = models.BigIntegerField(_("bytes shown"), default=0)
    # Relative to settings.TERMINAL_RECORDINGS_DIR.
    recording = models.CharField(_("recording"), max_length=255, blank=True)
    recording_deleted_at = models.DateTimeField(_("recording deleted"), null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["user", "ended_at"], name="terminal_user_open")]
        verbose_name = _("terminal session")
        verbose_name_plural = _("terminal sessions")

    def __str__(self) -> str:
        return f"{self.username} → {self.namespace}/{self.pod}/{self.container}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    @property
    def duration(self) -> timedelta | None:
        return self.ended_at - self.started_at if self.ended_at else None

    @property
    def recording_path(self) -> Path | None:
        if not self.recording or self.recording_deleted_at:
            return None
        return Path(settings.TERMINAL_RECORDINGS_DIR) / self.recording


class ConfigChange(Run):
    """One ops edit of a running environment's configuration, applied by a task (see config_changes).

    It keeps what it will apply (the validated request and overrides, and the secret environment
    variables while it runs), the diff the user saw, and the log of the apply and the rollout.
    """

    environment = models.ForeignKey(
        "clusters.ProjectEnvironment", on_delete=models.CASCADE, related_name="config_changes"
    )
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(
        _("status"), max_length=16, choices=ConfigChangeStatus.choices, default=ConfigChangeStatus.QUEUED
    )
    request = models.JSONField(_("request"), default=dict)
    overrides = models.JSONField(_("overrides"), default=dict, blank=True)
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    diff = models.TextField(_("diff"), blank=True)
    # JSON {NAME: value} of every secret environment variable after the change; the task needs the
    # values to fill the Secret, so they are kept (encrypted) only until the change ends.
    secret_env = EncryptedTextField(_("secret environment variables"), blank=True, default="")
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    TRANSITIONS = CONFIG_CHANGE_TRANSITIONS
    RUNNING_STATUSES = ACTIVE_CONFIG_CHANGE_STATUSES
    FINAL_STATUSES = frozenset({ConfigChangeStatus.APPLIED, ConfigChangeStatus.FAILED})
    FAILED_STATUS = ConfigChangeStatus.FAILED
    EVENT_NAME, EVENT_KEY = "config-change", "change"
    PROJECT_ID = "environment__project_id"

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["environment"],
                condition=Q(status__in=sorted(ACTIVE_CONFIG_CHANGE_STATUSES)),
                name="one_active_config_change_per_environment",
            )
        ]
        verbose_name = _("configuration change")
        verbose_name_plural = _("configuration changes")

    def __str__(self) -> str:
        return f"#{self.pk} {self.environment}"

    def run_label(self) -> str:
        return gettext("Configuration change #%(id)s") % {"id": self.pk}
