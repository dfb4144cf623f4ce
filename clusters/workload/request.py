"""The workload request: the WorkloadSpec fields a requester chooses (on a ticket or a configuration
edit), checked for shape and turned into a full, valid spec with the project's, environment's and
cluster's parts. Pure: reads the objects it is given, never the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from clusters.choices import DEFAULT_NAMESPACE_TEMPLATE, ClusterMonitoring
from clusters.models.logging import log_key
from clusters.workload import fields, manifests, secret_env
from opsportal.secrets import SecretText
from projects.choices import Environment

if TYPE_CHECKING:
    from clusters.models import Cluster, LogPipeline
    from projects.models import Project

# The fields of a WorkloadSpec that a ticket's requester chooses (see fields); the rest come from the
# project, the environment and the cluster.
REQUEST_FIELD_TYPES: dict[str, tuple[type, ...]] = fields.request_field_types()
REQUEST_FIELDS = tuple(REQUEST_FIELD_TYPES)
REQUIRED_REQUEST_FIELDS = fields.required_names()


def namespace_for(*, project: str, environment: str, template: str = DEFAULT_NAMESPACE_TEMPLATE) -> str:
    """The namespace a project's environment runs in: the cluster's template, or the default one."""
    return template.format(project=project, environment=environment)


def refuse_prod_image(*, environment: str, request, current: dict | None = None) -> None:
    """Production runs only an image confirmed in test, and it gets there by promotion: a prod ticket may
    not bring an image of its own (the bootstrap placeholder stands in until the first promotion), and a
    configuration edit may not change it. Raises ValidationError on the ``image`` field."""
    if environment != Environment.PROD or not isinstance(request, dict):
        return
    image = request.get("image")
    if image in (None, "") or image == (current or {}).get("image"):
        return
    message = _("Production gets its image only by promoting a release confirmed in test; leave it empty.")
    raise ValidationError({"image": message})


def logs_to_pipeline(request) -> bool:
    return isinstance(request, dict) and request.get("logs_to_pipeline") is True


def log_secret_values(*, request: dict, log_pipeline: LogPipeline | None) -> dict[str, SecretText]:
    """What the env Secret holds for the log pipeline: ``LOG_REDIS_URL`` when the service logs to a
    pipeline whose proxy has a password (the URL carries it). Read from the pipeline each time objects are
    rendered for the cluster, never stored with the request or the secret variables, so a re-apply picks
    up a changed address or password."""
    if not logs_to_pipeline(request) or log_pipeline is None or not log_pipeline.password:
        return {}
    return {manifests.LOG_URL_ENV: SecretText(log_pipeline.redis_url())}


def env_secret_values(
    *, stored: str, request: dict, log_pipeline: LogPipeline | None
) -> dict[str, SecretText]:
    """Every value of the env Secret: the secret variables (``stored``, the encrypted field's value) and
    the log pipeline's URL when it carries a password. Their digest goes into the pod template."""
    return {**secret_env.load(stored), **log_secret_values(request=request, log_pipeline=log_pipeline)}


def masked_url(url: str) -> str:
    """The URL as people may see it: any password replaced by asterisks."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=":********@" + parts.netloc.rpartition("@")[2]))


def _log_fields(
    *, project: Project, environment: str, cluster: Cluster | None, log_pipeline: LogPipeline | None
) -> dict:
    """The spec's log pipeline fields for a request that asks for it. Without a cluster (a ticket before
    approval) nothing is known yet; a cluster without a pipeline is refused, so nothing is applied that
    would push its logs nowhere."""
    if cluster is None:
        return {}
    if log_pipeline is None:
        message = _(
            "The cluster %(cluster)s has no log pipeline yet: ops must set one up for it "
            "before a service can send its logs there, or turn this off."
        ) % {"cluster": cluster.name}
        raise ValidationError({"logs_to_pipeline": message})
    return {
        "log_redis_url": masked_url(log_pipeline.redis_url()),
        "log_redis_url_secret": bool(log_pipeline.password),
        "log_redis_key": log_key(project.name, environment),
    }


def build_spec(
    *,
    project: Project,
    environment: str,
    cluster: Cluster | None,
    request: dict,
    overrides: dict,
    secret_env_digest: str = "",
    log_pipeline: LogPipeline | None = None,
) -> manifests.WorkloadSpec:
    """The full spec of a request. ``log_pipeline`` is the cluster's (``cluster_log_pipeline``), needed
    when the request logs to the pipeline; ``secret_env_digest`` is the digest of ``env_secret_values``."""
    _check_request_types(request)
    data = {key: value for key, value in request.items() if value is not None}
    if logs_to_pipeline(request):
        data.update(
            _log_fields(project=project, environment=environment, cluster=cluster, log_pipeline=log_pipeline)
        )
    data["secret_env_digest"] = secret_env_digest
    data.setdefault("image", settings.OPSPORTAL_BOOTSTRAP_IMAGE)
    if not data.get("image"):
        data["image"] = settings.OPSPORTAL_BOOTSTRAP_IMAGE
    data.update(
        project=project.name,
        environment=environment,
        namespace=namespace_for(
            project=project.name,
            environment=environment,
            template=cluster.namespace_template if cluster else DEFAULT_NAMESPACE_TEMPLATE,
        ),
        language=project.language,
        overrides=sorted((overrides or {}).items()),
        service_monitor=bool(cluster and cluster.monitoring == ClusterMonitoring.SERVICE_MONITOR),
    )
    try:
        spec = manifests.spec_from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValidationError(str(exc)) from exc
    errors = manifests.spec_errors(spec)
    if errors:
        raise ValidationError({key: [str(m) for m in messages] for key, messages in errors.items()})
    return spec


def _check_request_types(request) -> None:
    """Reject wrong shapes with field errors before the spec's own rules (which assume the types) run."""
    if not isinstance(request, dict):
        raise ValidationError({"request": _("Expected an object of fields.")})
    errors: dict[str, str] = {}
    for key, value in request.items():
        expected = REQUEST_FIELD_TYPES.get(key)
        if expected is None:
            errors[key] = _("Unknown field.")
        elif value is not None and (
            not isinstance(value, expected) or (bool not in expected and isinstance(value, bool))
        ):
            errors[key] = _("Expected %(type)s.") % {"type": expected[0].__name__}
    if "env_vars" in request and isinstance(request["env_vars"], list):
        for pair in request["env_vars"]:
            if not (
                isinstance(pair, list | tuple) and len(pair) == 2 and all(isinstance(x, str) for x in pair)
            ):
                errors["env_vars"] = _("Expected a list of [name, value] pairs of strings.")
                break
    names = request.get(secret_env.NAMES_KEY)
    if isinstance(names, list) and not all(isinstance(name, str) for name in names):
        errors[secret_env.NAMES_KEY] = _("Expected a list of names.")
    for key in REQUIRED_REQUEST_FIELDS:
        if request.get(key) is None:
            errors.setdefault(key, _("This field is required."))
    if errors:
        raise ValidationError(errors)
