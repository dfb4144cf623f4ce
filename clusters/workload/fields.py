"""The workload request's fields, listed once.

A ticket's (and a running environment's) ``request`` holds the WorkloadSpec fields a person chooses; the
rest come from the project, the environment and the cluster. The ticket form, the configuration form,
the API's schema, the services' type check and the tests all read this list, so adding a knob means one
entry here plus its rendering in ``manifests``.

The rules themselves stay in ``manifests.spec_errors``: the bounds below are shown to people (help texts
and the OpenAPI schema), never checked a second time, so every path reports the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from clusters.choices import ServiceType
from clusters.workload import manifests


class Kind(StrEnum):
    INT = "int"
    QUANTITY = "quantity"  # a Kubernetes quantity such as 500m or 1Gi
    BOOL = "bool"
    CHOICE = "choice"
    TEXT = "text"
    PATH = "path"  # an HTTP path
    ENV_LINES = "env_lines"  # NAME=value pairs; a list of [name, value] in the request
    NAMES = "names"  # a list of names


class Blank(StrEnum):
    """What an empty form field becomes in the request."""

    NOT_ALLOWED = "not_allowed"
    EMPTY = "empty"  # "" (text) or None (numbers): the spec's "not set"
    OMIT = "omit"  # the key is left out, so the spec's default applies


class Use(StrEnum):
    TICKET = "ticket"  # chosen when filing an onboarding ticket
    CONFIG = "config"  # also edited on a running environment's configuration page


@dataclass(frozen=True)
class RequestField:
    name: str  # the WorkloadSpec field
    kind: Kind
    label: str | Promise = ""
    help_text: str | Promise = ""
    # The API requires it on a new ticket; the form requires it unless ``blank`` says otherwise.
    required: bool = False
    blank: Blank = Blank.NOT_ALLOWED
    uses: frozenset[Use] = frozenset({Use.TICKET})
    default: object = None  # the form's starting value for a new ticket
    language_defaults: dict[str, object] = field(default_factory=dict)
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    choices: tuple[tuple[str, str | Promise], ...] = ()
    placeholder: str = ""
    # Filled by the services (e.g. the names of the encrypted secret variables), never typed by people.
    set_by_service: bool = False

    @property
    def python_types(self) -> tuple[type, ...]:
        if self.kind == Kind.INT:
            return (int,)
        if self.kind == Kind.BOOL:
            return (bool,)
        if self.kind in (Kind.ENV_LINES, Kind.NAMES):
            return (list,)
        return (str,)


_BOTH = frozenset({Use.TICKET, Use.CONFIG})

CATALOGUE: tuple[RequestField, ...] = (
    RequestField(
        "replicas",
        Kind.INT,
        _("Replicas"),
        required=True,
        uses=_BOTH,
        default=2,
        minimum=1,
        maximum=manifests.HPA_MAX_REPLICAS,
    ),
    RequestField(
        "hpa_min",
        Kind.INT,
        _("Autoscaling minimum"),
        required=True,
        uses=_BOTH,
        default=2,
        minimum=1,
        maximum=manifests.HPA_MAX_REPLICAS,
    ),
    RequestField(
        "hpa_max",
        Kind.INT,
        _("Autoscaling maximum"),
        required=True,
        uses=_BOTH,
        default=6,
        minimum=1,
        maximum=manifests.HPA_MAX_REPLICAS,
    ),
    RequestField(
        "hpa_cpu_target",
        Kind.INT,
        _("Target CPU utilisation (%)"),
        uses=_BOTH,
        default=70,
        minimum=1,
        maximum=100,
    ),
    RequestField(
        "hpa_memory_target",
        Kind.INT,
        _("Target memory utilisation (%)"),
        _("Leave empty to scale on CPU only (recommended for Java)."),
        blank=Blank.EMPTY,
        uses=_BOTH,
        minimum=1,
        maximum=100,
    ),
    RequestField(
        "cpu_request",
        Kind.QUANTITY,
        _("CPU request"),
        _("e.g. 1 or 500m"),
        required=True,
        uses=_BOTH,
        default="500m",
        language_defaults={"java": "1", "go": "250m"},
        max_length=20,
    ),
    RequestField(
        "memory_request",
        Kind.QUANTITY,
        _("Memory request"),
        _("e.g. 1Gi or 512Mi"),
        required=True,
        uses=_BOTH,
        default="512Mi",
        language_defaults={"java": "1Gi", "go": "256Mi"},
        max_length=20,
    ),
    RequestField("cpu_limit", Kind.QUANTITY, _("CPU limit"), blank=Blank.EMPTY, uses=_BOTH, max_length=20),
    RequestField(
        "memory_limit",
        Kind.QUANTITY,
        _("Memory limit"),
        _("Empty = same as the request."),
        blank=Blank.EMPTY,
        uses=_BOTH,
        max_length=20,
    ),
    RequestField(
        "service_type",
        Kind.CHOICE,
        _("Access"),
        default=ServiceType.CLUSTER_IP,
        choices=tuple(ServiceType.choices),
    ),
    RequestField("service_port", Kind.INT, _("Service port"), default=80, minimum=1, maximum=65535),
    RequestField("container_port", Kind.INT, _("Container port"), default=8080, minimum=1, maximum=65535),
    RequestField(
        "health_path",
        Kind.PATH,
        _("Health-check path"),
        uses=_BOTH,
        default="/healthz",
        language_defaults={"java": "/actuator/health", "go": "/healthz"},
        max_length=200,
    ),
    RequestField(
        "metrics_path",
        Kind.PATH,
        _("Metrics path"),
        _("Where Prometheus scrapes the pods (Spring Boot: /actuator/prometheus)."),
        blank=Blank.OMIT,
        uses=_BOTH,
        default="/metrics",
        language_defaults={"java": "/actuator/prometheus"},
        max_length=200,
    ),
    RequestField(
        "metrics_port",
        Kind.INT,
        _("Metrics port"),
        _("Empty = the container port."),
        blank=Blank.EMPTY,
        uses=_BOTH,
        minimum=1,
        maximum=65535,
    ),
    RequestField(
        "startup_seconds",
        Kind.INT,
        _("Expected start-up time (s)"),
        _("How long the application needs before it serves."),
        uses=_BOTH,
        default=30,
        language_defaults={"java": 60, "go": 10},
        minimum=0,
        maximum=manifests.MAX_STARTUP_SECONDS,
    ),
    RequestField(
        "runtime_options",
        Kind.TEXT,
        _("Runtime options"),
        _("JVM options for Java (heap and CPU count are derived from the limits)."),
        blank=Blank.EMPTY,
        uses=_BOTH,
        max_length=2000,
    ),
    RequestField(
        "env_vars",
        Kind.ENV_LINES,
        _("Environment variables"),
        _("One NAME=value per line."),
        blank=Blank.EMPTY,
        uses=_BOTH,
        max_length=20000,
        placeholder="SPRING_PROFILES_ACTIVE=prod",
    ),
    RequestField("secret_env_names", Kind.NAMES, uses=_BOTH, set_by_service=True),
    RequestField("eureka_enabled", Kind.BOOL, _("Registered in Eureka"), blank=Blank.EMPTY),
    RequestField(
        "logs_to_pipeline",
        Kind.BOOL,
        _("Send logs to the cluster's log pipeline"),
        _(
            "The service gets LOG_REDIS_URL (the log proxy's address; from a Secret when the proxy has a "
            "password) and LOG_REDIS_KEY=logs:<project>:<environment>, and pushes its JSON log lines there "
            "with LPUSH. The cluster must have a log pipeline."
        ),
        blank=Blank.EMPTY,
        uses=_BOTH,
    ),
    RequestField(
        "eureka_deregister_path",
        Kind.PATH,
        _("De-registration endpoint"),
        _(
            "The application's endpoint that sets its Eureka status (Spring Cloud 2020+: "
            "/actuator/serviceregistry, exposed with management.endpoints.web.exposure.include)."
        ),
        blank=Blank.OMIT,
        default=manifests.DEREGISTER_PATH,
        max_length=200,
    ),
    # The three figures of the worst-case stale window, which the preStop wait covers by default.
    RequestField(
        "eureka_response_cache_seconds",
        Kind.INT,
        _("Eureka server response cache (s)"),
        _("The server's response-cache-update-interval-ms in seconds; 0 if its read-only cache is off."),
        blank=Blank.OMIT,
        uses=_BOTH,
        default=30,
        minimum=0,
        maximum=manifests.MAX_CACHE_SECONDS,
    ),
    RequestField(
        "registry_refresh_seconds",
        Kind.INT,
        _("Clients' registry fetch interval (s)"),
        _("The callers' eureka.client.registry-fetch-interval-seconds."),
        blank=Blank.OMIT,
        uses=_BOTH,
        default=30,
        minimum=1,
        maximum=manifests.MAX_CACHE_SECONDS,
    ),
    RequestField(
        "loadbalancer_cache_seconds",
        Kind.INT,
        _("Callers' load-balancer cache (s)"),
        _("The callers' spring.cloud.loadbalancer.cache.ttl (35 s by default); 0 without a cache."),
        blank=Blank.OMIT,
        uses=_BOTH,
        default=35,
        minimum=0,
        maximum=manifests.MAX_CACHE_SECONDS,
    ),
    RequestField(
        "image",
        Kind.TEXT,
        _("Initial image"),
        _("Optional, test only; the first release replaces it. Production gets its image only by promotion."),
        blank=Blank.EMPTY,
        max_length=500,
    ),
)
BY_NAME: dict[str, RequestField] = {entry.name: entry for entry in CATALOGUE}


def entries(
    use: Use | None = None, *, catalogue: tuple[RequestField, ...] | None = None
) -> list[RequestField]:
    """The entries people edit (for ``use``, or all of them), in the order forms show them."""
    return [
        entry
        for entry in (CATALOGUE if catalogue is None else catalogue)
        if not entry.set_by_service and (use is None or use in entry.uses)
    ]


def names(use: Use | None = None) -> tuple[str, ...]:
    return tuple(entry.name for entry in entries(use))


def request_field_types(catalogue: tuple[RequestField, ...] | None = None) -> dict[str, tuple[type, ...]]:
    return {entry.name: entry.python_types for entry in (CATALOGUE if catalogue is None else catalogue)}


def required_names() -> tuple[str, ...]:
    return tuple(entry.name for entry in CATALOGUE if entry.required)


def with_switches_off(request: dict, use: Use) -> dict:
    """``request`` with the on/off fields of ``use`` that it predates set to off: a checkbox cannot send
    "not set", so without this an untouched form would record a change from nothing to off."""
    unset = {
        entry.name: False for entry in entries(use) if entry.kind == Kind.BOOL and entry.name not in request
    }
    return {**request, **unset}


def initial_request(language: str) -> dict:
    """A new ticket's starting values; Java services start slowly and need more memory."""
    return {
        entry.name: entry.language_defaults.get(language, entry.default)
        for entry in CATALOGUE
        if entry.default is not None or language in entry.language_defaults
    }
