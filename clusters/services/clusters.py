"""Writes for clusters. Credentials never reach the audit trail: changes only say they changed."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.choices import DEFAULT_NAMESPACE_TEMPLATE, AuthType, ClusterMonitoring
from clusters.models import Cluster
from clusters.tasks import apply_prometheus_config
from integrations.errors import IntegrationError, Invalid, NotFound, Timeout, Unauthorized, Unreachable
from integrations.eureka import check_service_url
from integrations.kubernetes import KubeClient, KubeconfigError, parse_kubeconfig
from observability.services import audit_record, changes_between
from opsportal import runs

# Fields recorded in the audit trail with their old and new values.
AUDITED_FIELDS = (
    "name",
    "environment",
    "api_url",
    "auth_type",
    "verify_tls",
    "namespace_template",
    "monitoring",
    "eureka_url",
)
# Test connection must answer a person waiting on a page: shorter than the default read timeout.
CHECK_TIMEOUT = (5, 10)


def _snapshot(cluster: Cluster) -> dict:
    return {field: getattr(cluster, field) for field in AUDITED_FIELDS}


def _api_url_from_kubeconfig(auth_type: str, api_url: str, credential: str) -> str:
    if api_url or auth_type != AuthType.KUBECONFIG:
        return api_url
    try:
        return parse_kubeconfig(credential).server
    except KubeconfigError:
        return api_url  # full_clean reports the kubeconfig's problem


def _eureka_url(value: str) -> str:
    """Stored as clients write it, ending in "/"; an unusable one is left for full_clean to explain."""
    value = (value or "").strip()
    try:
        return check_service_url(value) if value else ""
    except ValueError:
        return value


@transaction.atomic
def cluster_create(
    *,
    actor: AbstractBaseUser,
    name: str,
    environment: str,
    auth_type: str,
    credential: str,
    api_url: str = "",
    ca_certificate: str = "",
    verify_tls: bool = True,
    namespace_template: str = DEFAULT_NAMESPACE_TEMPLATE,
    monitoring: str = ClusterMonitoring.PORTAL,
    eureka_url: str = "",
    remote_addr: str | None = None,
) -> Cluster:
    """Create a cluster; with a kubeconfig and no API URL, the kubeconfig's server is used."""
    credential = (credential or "").strip()
    cluster = Cluster(
        name=name,
        environment=environment,
        api_url=_api_url_from_kubeconfig(auth_type, (api_url or "").strip(), credential),
        ca_certificate=(ca_certificate or "").strip(),
        auth_type=auth_type,
        credential=credential,
        verify_tls=verify_tls,
        namespace_template=namespace_template or DEFAULT_NAMESPACE_TEMPLATE,
        monitoring=monitoring or ClusterMonitoring.PORTAL,
        eureka_url=_eureka_url(eureka_url),
    )
    cluster.full_clean()
    cluster.save()
    summary = ["credential set"] + (["CA certificate set"] if cluster.ca_certificate else [])
    audit_record(
        actor=actor,
        verb="cluster.create",
        target=cluster,
        changes={**_snapshot(cluster), "summary": ", ".join(summary)},
        remote_addr=remote_addr,
    )
    # Prometheus gets a service-discovery job for the new cluster.
    runs.queue(apply_prometheus_config, reason=f"cluster {cluster.name} created")
    return cluster


@transaction.atomic
def cluster_update(
    *,
    actor: AbstractBaseUser,
    cluster: Cluster,
    name: str | None = None,
    environment: str | None = None,
    api_url: str | None = None,
    ca_certificate: str | None = None,
    auth_type: str | None = None,
    credential: str = "",
    verify_tls: bool | None = None,
    namespace_template: str | None = None,
    monitoring: str | None = None,
    eureka_url: str | None = None,
    remote_addr: str | None = None,
) -> Cluster:
    """Change what is given; ``None`` keeps a field, a blank credential keeps the stored one."""
    cluster = Cluster.objects.select_for_update().get(pk=cluster.pk)
    before = _snapshot(cluster)
    old_ca, old_credential = cluster.ca_certificate, cluster.credential
    credential = (credential or "").strip()
    updates = {
        "name": name,
        "environment": environment,
        "api_url": api_url.strip() if api_url is not None else None,
        "ca_certificate": ca_certificate.strip() if ca_certificate is not None else None,
        "auth_type": auth_type,
        "verify_tls": verify_tls,
        "namespace_template": namespace_template,
        "monitoring": monitoring,
        "eureka_url": _eureka_url(eureka_url) if eureka_url is not None else None,
    }
    for field, value in updates.items():
        if value is not None:
            setattr(cluster, field, value)
    if cluster.auth_type != before["auth_type"] and not credential:
        raise ValidationError(
            {"credential": _("Enter the new credential when you change the authentication type.")}
        )
    if credential:
        cluster.credential = credential
    cluster.api_url = _api_url_from_kubeconfig(cluster.auth_type, cluster.api_url, cluster.credential)
    cluster.full_clean()

    changes = changes_between(before, _snapshot(cluster))
    summary = []
    if cluster.credential != old_credential:
        summary.append("credential changed")
    if cluster.ca_certificate != old_ca:
        summary.append("CA certificate changed")
    if not changes and not summary:
        return cluster
    cluster.save()
    if summary:
        changes["summary"] = ", ".join(summary)
    audit_record(actor=actor, verb="cluster.update", target=cluster, changes=changes, remote_addr=remote_addr)
    if "name" in changes:  # the job is named after the cluster
        runs.queue(apply_prometheus_config, reason=f"cluster {before['name']} renamed to {cluster.name}")
    return cluster


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str
    server_version: str = ""
    user: str = ""
    next_step: str = ""
    error: str = ""  # the IntegrationError class name, e.g. "Unreachable"


def _next_step(exc: IntegrationError) -> str:
    if isinstance(exc, Unreachable) and exc.permanent:
        return _(
            "Check the CA certificate (or the kubeconfig's certificate-authority-data) and that the "
            "API URL's host name matches the server certificate."
        )
    if isinstance(exc, Unreachable):
        return _("Check the API URL and that this portal's network can reach it (firewall, VPN, proxy).")
    if isinstance(exc, Timeout):
        return _("The apiserver did not answer in time: check the network path, then try again.")
    if isinstance(exc, Unauthorized):
        return _(
            "The apiserver rejected the credential: paste a fresh token or kubeconfig and check its "
            "permissions."
        )
    if isinstance(exc, Invalid):
        return _("The connection settings are not usable: fix the field named in the message.")
    if not exc.permanent:
        return _("The apiserver reported a temporary problem: try again in a minute.")
    return _("Read the message from the apiserver and fix the cluster settings.")


def _check(cluster: Cluster) -> ConnectionCheck:
    try:
        with KubeClient.from_cluster(cluster, timeout=CHECK_TIMEOUT) as kube:
            version = kube.server_version().git_version
            # /version answers anonymous callers too; this call proves the credential works.
            try:
                user = kube.whoami()
            except NotFound:  # apiservers before 1.28 have no SelfSubjectReview
                user = ""
    except KubeconfigError as exc:
        return ConnectionCheck(
            ok=False,
            message=_("The kubeconfig cannot be used: %(reason)s.") % {"reason": exc},
            next_step=_("Paste a kubeconfig with embedded certificates or a token."),
            error="Invalid",
        )
    except IntegrationError as exc:
        return ConnectionCheck(
            ok=False, message=str(exc), next_step=_next_step(exc), error=type(exc).__name__
        )
    return ConnectionCheck(
        ok=True,
        message=_("Connected to Kubernetes %(version)s as %(user)s.") % {"version": version, "user": user},
        server_version=version,
        user=user,
    )


def cluster_test_connection(
    *, actor: AbstractBaseUser, cluster: Cluster, remote_addr: str | None = None
) -> ConnectionCheck:
    """Call the apiserver (outside any transaction), then store and audit the outcome."""
    result = _check(Cluster.objects.get(pk=cluster.pk))  # the stored settings, not a stale copy
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
        locked.last_check_at = timezone.now()
        locked.last_check_ok = result.ok
        locked.last_check_message = result.message[:2000]
        if result.server_version:
            locked.server_version = result.server_version[:64]
        locked.save(
            update_fields=[
                "last_check_at",
                "last_check_ok",
                "last_check_message",
                "server_version",
                "updated_at",
            ]
        )
        audit_record(
            actor=actor,
            verb="cluster.test_connection",
            target=locked,
            changes={"ok": result.ok, "message": result.message, "server_version": result.server_version},
            remote_addr=remote_addr,
        )
    return result
