import re
import string

from cryptography import x509
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from clusters.choices import DEFAULT_NAMESPACE_TEMPLATE, AuthType, Environment
from integrations.kubernetes.config import KubeconfigError, check_server_url, parse_kubeconfig
from opsportal.secrets import EncryptedTextField
from projects.models import dns1123_label

_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_TEMPLATE_FIELDS = {"project", "environment"}


def validate_api_url(value: str) -> None:
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
    namespace_template = models.CharField(
        _("namespace template"),
        max_length=100,
        default=DEFAULT_NAMESPACE_TEMPLATE,
        validators=[validate_namespace_template],
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
        return self.namespace_template.format(project=project_name, environment=self.environment)
