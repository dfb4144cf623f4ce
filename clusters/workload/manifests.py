"""Render a project environment's Kubernetes objects from a typed spec, with the company's lessons built in.

Pure: no I/O, no database. ``render(spec)`` returns plain dicts for server-side apply (Service, Deployment,
HPA and, when the HPA keeps at least two pods, a PodDisruptionBudget) plus the guardrails it applied, each
explained so ops can see why a value is what it is. Ops may override some guardrail defaults by knob name
(``OVERRIDABLE``); an override below the safe value is reported as a warning.

Messages are marked for translation and evaluated in the language active when the function is called;
callers that store them should also store the stable ``Guardrail.code``.
"""

from __future__ import annotations

import base64
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext_lazy as _
from kubernetes.utils import parse_quantity

LANGUAGES = ("java", "go", "php", "python", "node")
ENVIRONMENTS = ("test", "prod")
SERVICE_TYPES = ("ClusterIP", "LoadBalancer")
MANAGED_BY = "opsportal"
CONTAINER_NAME = "app"
METRICS_PORT_NAME = "metrics"
PORT_NAME = "http"

HPA_MAX_REPLICAS = 100
MAX_STARTUP_SECONDS = 3600
MAX_CACHE_SECONDS = 300
# A Spring Boot service needs ~40 s to start even with 4 cores (seed article); other runtimes start faster
# but still get a margin so a slow node or a cold image cache does not restart them.
LANGUAGE_MIN_STARTUP_ALLOWANCE = {"java": 90}
DEFAULT_MIN_STARTUP_ALLOWANCE = 30
STARTUP_ALLOWANCE_FACTOR = Decimal("1.5")
PROBE_FAILURE_THRESHOLD = 3
STARTUP_PROBE_PERIOD = 5
PROBE_PERIOD = 10
MIN_PROGRESS_DEADLINE = 600
# Image pull and scheduling come on top of the application's own start-up.
PROGRESS_DEADLINE_MARGIN = 300
HPA_SCALE_UP_WINDOW = 60
# The preStop hook's de-registration call gives up after this; it counts in the termination grace period.
DEREGISTER_TIMEOUT = 5
# Spring Cloud 2020+ (spring-cloud-commons PR #701): the endpoint id is "serviceregistry". The hyphenated
# path was Finchley/Greenwich's and answers 404 on every later Spring Cloud.
DEREGISTER_PATH = "/actuator/serviceregistry"
LEGACY_DEREGISTER_PATH = "/actuator/service-registry"
# What callers' caches add up to is a lower bound measured on defaults; this covers clock skew between
# the moment the override lands and the caches' own timers.
STALE_WINDOW_MARGIN = 5
# Without Eureka only the endpoints controller and kube-proxy stand between a terminating pod and new
# connections: a few seconds.
ENDPOINTS_REMOVAL_SECONDS = 5
# Where the generic Dockerfiles put the static helper (deploys/prestop/http-post.c); the hook prefers it to
# wget and curl, which many images lack.
PRESTOP_HTTP_POST = "/opt/opsportal/bin/http-post"

# Service names must be DNS-1035 labels (start with a letter), so the project name follows that stricter rule.
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
# The apiserver's quantity grammar; parse_quantity alone also takes " 1", "1K", "NaN" and "1_000".
# ASCII digits only: Python's \d also matches e.g. Arabic-Indic "١", which the apiserver refuses.
_QUANTITY = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?")
# Upper bounds per container: larger than the biggest node a portal-managed cluster is expected to have
# (64 cores, 256 GiB), so a typo such as "500" cores for "500m" or "1Ei" is caught here with a clear message
# instead of leaving pods Pending for ever because no node can ever fit them.
MAX_CPU_CORES = Decimal(64)
MAX_MEMORY_BYTES = Decimal(256 * 1024**3)
# Paths go into an httpGet probe and a shell command; keep them to characters that need no quoting anywhere.
_HTTP_PATH = re.compile(r"/[A-Za-z0-9._~%/:@+=,-]*")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_XMX = re.compile(r"(?:^|\s)-(?:Xmx|XX:MaxHeapSize=)(\d+)([kKmMgGtT]?)(?=\s|$)")
_JVM_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
# The JVM lets these override JAVA_TOOL_OPTIONS, which would silently undo the container-aware flags.
_JVM_OVERRIDING_ENV = ("_JAVA_OPTIONS", "JDK_JAVA_OPTIONS")
JAVA_OPTIONS_ENV = "JAVA_TOOL_OPTIONS"
MAX_LABEL_VALUE = 63
# An HMAC of the secret values (computed by the caller, never the values): a changed secret changes the pod
# template, so the pods roll and pick the new value up; environment variables are only read at start.
SECRET_ENV_DIGEST_ANNOTATION = "opsportal.io/secret-env-hmac"  # noqa: S105 (an annotation key)
# What a service that logs to its cluster's log pipeline gets: the proxy's address and its list key.
LOG_URL_ENV = "LOG_REDIS_URL"
LOG_KEY_ENV = "LOG_REDIS_KEY"


@dataclass(frozen=True)
class WorkloadSpec:
    project: str
    environment: str
    namespace: str
    language: str
    image: str
    replicas: int
    hpa_min: int
    hpa_max: int
    cpu_request: str
    memory_request: str
    cpu_limit: str = ""
    memory_limit: str = ""
    container_port: int = 8080
    service_port: int = 80
    service_type: str = "ClusterIP"
    health_path: str = "/healthz"
    # Where Prometheus scrapes the pods; the port defaults to the container port.
    metrics_path: str = "/metrics"
    metrics_port: int | None = None
    startup_seconds: int = 60
    runtime_options: str = ""
    env_vars: tuple[tuple[str, str], ...] = ()
    # Names only: the values live encrypted in the database and reach the cluster in the Secret that
    # ``secret_with_values`` fills at apply time.
    secret_env_names: tuple[str, ...] = ()
    secret_env_digest: str = ""
    hpa_cpu_target: int = 70
    hpa_memory_target: int | None = None
    eureka_enabled: bool = False
    eureka_deregister_path: str = DEREGISTER_PATH
    # The three caches between the Eureka server and a caller's next request (the worst-case stale window):
    # the server's read-only response cache (eureka.server.response-cache-update-interval-ms), the
    # callers' registry fetch interval (eureka.client.registry-fetch-interval-seconds) and their load
    # balancer's cache (spring.cloud.loadbalancer.cache.ttl).
    eureka_response_cache_seconds: int = 30
    registry_refresh_seconds: int = 30
    loadbalancer_cache_seconds: int = 35
    # Set from the cluster, not the request: its Prometheus Operator scrapes through a ServiceMonitor.
    service_monitor: bool = False
    # The request asks for the log pipeline; the other three come from the cluster's pipeline. A URL with
    # the proxy's password lives only in the env Secret (filled at apply time, like the secret variables):
    # here it is shown masked and ``log_redis_url_secret`` says the container reads it from the Secret.
    logs_to_pipeline: bool = False
    log_redis_url: str = ""
    log_redis_url_secret: bool = False
    log_redis_key: str = ""
    overrides: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Guardrail:
    code: str
    level: str  # "info" | "warning"
    message: str
    overridden: bool = False


@dataclass(frozen=True)
class Rendered:
    objects: list[dict]
    guardrails: list[Guardrail]


@dataclass(frozen=True)
class Knob:
    """A guardrail default ops may override. Defaults and safe bounds may depend on the spec."""

    name: str
    description: str
    lowest: int  # hard bounds: outside them the override is invalid
    highest: int
    default_for: Callable[[WorkloadSpec], int]
    safe_minimum_for: Callable[[WorkloadSpec], int]
    safe_maximum_for: Callable[[WorkloadSpec], int | None] = lambda spec: None
    languages: tuple[str, ...] = LANGUAGES

    def default(self, spec: WorkloadSpec) -> int:
        return self.default_for(spec)

    def safe_minimum(self, spec: WorkloadSpec) -> int:
        return self.safe_minimum_for(spec)

    def safe_maximum(self, spec: WorkloadSpec) -> int | None:
        return self.safe_maximum_for(spec)


@dataclass(frozen=True)
class WindowPart:
    code: str
    label: str
    seconds: int


def stale_window_parts(spec: WorkloadSpec) -> tuple[WindowPart, ...]:
    """What the worst-case stale window is made of: how long after the pod leaves the registry (or its
    Service) a caller may still send it a new request."""
    if not spec.eureka_enabled:
        return (WindowPart("endpoints", str(_("Service endpoints removal")), ENDPOINTS_REMOVAL_SECONDS),)
    # Each cache may have been refreshed just before the change: their worst cases add up.
    return (
        WindowPart(
            "eureka_response_cache",
            str(_("Eureka server response cache")),
            spec.eureka_response_cache_seconds,
        ),
        WindowPart(
            "registry_refresh", str(_("Clients' registry fetch interval")), spec.registry_refresh_seconds
        ),
        WindowPart(
            "loadbalancer_cache", str(_("Callers' load-balancer cache")), spec.loadbalancer_cache_seconds
        ),
        WindowPart("margin", str(_("Margin")), STALE_WINDOW_MARGIN),
    )


def _default_prestop_sleep(spec: WorkloadSpec) -> int:
    return sum(part.seconds for part in stale_window_parts(spec))


def _default_shutdown(spec: WorkloadSpec) -> int:
    return 30


def _safe_shutdown(spec: WorkloadSpec) -> int:
    # Spring Boot's graceful shutdown waits up to 30 s per phase by default.
    return 30 if spec.language == "java" else 10


def _startup_probe_off(spec: WorkloadSpec) -> bool:
    overrides = spec.overrides if isinstance(spec.overrides, tuple | list) else ()
    return any(isinstance(p, tuple | list) and list(p) == ["startup_probe_enabled", 0] for p in overrides)


def _safe_initial_delay(spec: WorkloadSpec) -> int:
    # Without a start-up probe the first liveness check must come after the slowest expected start.
    return _startup_allowance(spec) if _startup_probe_off(spec) else 0


OVERRIDABLE: dict[str, Knob] = {
    knob.name: knob
    for knob in (
        Knob(
            name="probe_timeout_seconds",
            description=_("Timeout of the readiness, liveness and start-up probes, in seconds."),
            lowest=1,
            highest=60,
            default_for=lambda spec: 3,
            safe_minimum_for=lambda spec: 3,
        ),
        Knob(
            name="startup_probe_enabled",
            description=_(
                "Start-up probe: 1 on, 0 off (liveness and readiness then start after the initial delay)."
            ),
            lowest=0,
            highest=1,
            default_for=lambda spec: 1,
            safe_minimum_for=lambda spec: 1,
        ),
        Knob(
            name="probe_initial_delay_seconds",
            description=_("Seconds before the first readiness and liveness check (initialDelaySeconds)."),
            lowest=0,
            highest=3600,
            default_for=lambda spec: 0,
            safe_minimum_for=_safe_initial_delay,
        ),
        Knob(
            name="prestop_sleep_seconds",
            description=_(
                "Seconds the preStop hook waits after de-registering, so callers stop sending traffic "
                "before the application is told to exit."
            ),
            lowest=0,
            # Each of the three caches may be up to 300 s.
            highest=1200,
            default_for=_default_prestop_sleep,
            safe_minimum_for=_default_prestop_sleep,
        ),
        Knob(
            name="shutdown_seconds",
            description=_(
                "Seconds the application gets to finish in-flight work after SIGTERM, before the kubelet "
                "kills it; added to the preStop sleep to make the termination grace period."
            ),
            lowest=1,
            highest=600,
            default_for=_default_shutdown,
            safe_minimum_for=_safe_shutdown,
        ),
        Knob(
            name="jvm_max_ram_percentage",
            description=_("Share of the container memory limit the JVM heap may use (MaxRAMPercentage)."),
            lowest=10,
            highest=95,
            default_for=lambda spec: 75,
            safe_minimum_for=lambda spec: 50,
            # Above this, metaspace, thread stacks and direct buffers no longer fit beside the heap.
            safe_maximum_for=lambda spec: 80,
            languages=("java",),
        ),
        Knob(
            name="hpa_scale_down_window_seconds",
            description=_("Seconds the autoscaler waits for load to stay low before removing pods."),
            lowest=0,
            highest=3600,
            default_for=lambda spec: 300,
            safe_minimum_for=lambda spec: 300,
        ),
    )
}


# --------------------------------------------------------------------------------------------------------
# Validation


# Derived from the annotations (strings, see the __future__ import) so a new spec field is type-checked
# without another list to keep in step.
_INT_FIELDS = tuple(f.name for f in fields(WorkloadSpec) if f.type == "int")
_STR_FIELDS = tuple(f.name for f in fields(WorkloadSpec) if f.type == "str")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _quantity(value: str) -> Decimal | None:
    if not _QUANTITY.fullmatch(value):
        return None
    try:
        return parse_quantity(value)
    except ValueError:
        return None


def spec_errors(spec: WorkloadSpec) -> dict[str, list[str]]:
    """Field name -> messages; ``{}`` when ``render(spec)`` will succeed."""
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(str(message))

    # Wrong types come from hand-edited JSON or a form that skipped coercion; report them and skip
    # the rules that would crash on them.
    for name in _INT_FIELDS:
        if not _is_int(getattr(spec, name)):
            add(name, _("%(field)s must be a whole number.") % {"field": name})
    for name in _STR_FIELDS:
        if not isinstance(getattr(spec, name), str):
            add(name, _("%(field)s must be text.") % {"field": name})
    if spec.hpa_memory_target is not None and not _is_int(spec.hpa_memory_target):
        add("hpa_memory_target", _("hpa_memory_target must be a whole number or empty."))
    for name in ("eureka_enabled", "logs_to_pipeline", "log_redis_url_secret"):
        if not isinstance(getattr(spec, name), bool):
            add(name, _("%(field)s must be true or false.") % {"field": name})
    if errors:
        return errors

    _check_names(spec, add)
    _check_replicas(spec, add)
    _check_resources(spec, add)
    _check_network(spec, add)
    _check_runtime(spec, add)
    _check_overrides(spec, add)
    return errors


Add = Callable[[str, str], None]


def _check_names(spec: WorkloadSpec, add: Add) -> None:
    # "<project>-<environment>" is a label value (at most 63 characters).
    longest_project = MAX_LABEL_VALUE - 1 - max(len(env) for env in ENVIRONMENTS)
    if len(spec.project) > longest_project or not _DNS1035_LABEL.fullmatch(spec.project):
        add(
            "project",
            _(
                "project '%(value)s' is not a valid name: use at most %(max)d lowercase letters, digits "
                "and '-', starting with a letter and ending with a letter or digit."
            )
            % {"value": spec.project, "max": longest_project},
        )
    if len(spec.namespace) > MAX_LABEL_VALUE or not _DNS1123_LABEL.fullmatch(spec.namespace):
        add(
            "namespace",
            _(
                "namespace '%(value)s' is not a valid DNS-1123 label: use at most 63 lowercase letters, "
                "digits and '-', starting and ending with a letter or digit."
            )
            % {"value": spec.namespace},
        )
    if spec.environment not in ENVIRONMENTS:
        add(
            "environment",
            _("environment must be one of %(choices)s, not '%(value)s'.")
            % {"choices": ", ".join(ENVIRONMENTS), "value": spec.environment},
        )
    if spec.language not in LANGUAGES:
        add(
            "language",
            _("language must be one of %(choices)s, not '%(value)s'.")
            % {"choices": ", ".join(LANGUAGES), "value": spec.language},
        )
    if not spec.image or any(c.isspace() for c in spec.image):
        add("image", _("image must be a non-empty image reference without spaces."))


def _check_replicas(spec: WorkloadSpec, add: Add) -> None:
    if spec.replicas < 1:
        add("replicas", _("replicas must be at least 1, not %(value)d.") % {"value": spec.replicas})
    if spec.hpa_min < 1:
        add("hpa_min", _("hpa_min must be at least 1, not %(value)d.") % {"value": spec.hpa_min})
    if spec.hpa_max > HPA_MAX_REPLICAS:
        add(
            "hpa_max",
            _("hpa_max must be at most %(max)d, not %(value)d.")
            % {"max": HPA_MAX_REPLICAS, "value": spec.hpa_max},
        )
    if spec.hpa_min > spec.hpa_max:
        add(
            "hpa_min",
            _("hpa_min (%(min)d) must not be greater than hpa_max (%(max)d).")
            % {"min": spec.hpa_min, "max": spec.hpa_max},
        )
    elif spec.replicas >= 1 and not spec.hpa_min <= spec.replicas <= spec.hpa_max:
        add(
            "replicas",
            _("replicas (%(value)d) must be within the autoscaling range %(min)d-%(max)d.")
            % {"value": spec.replicas, "min": spec.hpa_min, "max": spec.hpa_max},
        )
    for name in ("hpa_cpu_target", "hpa_memory_target"):
        value = getattr(spec, name)
        if value is not None and not 1 <= value <= 100:
            add(name, _("%(field)s must be a percentage from 1 to 100.") % {"field": name})


def _check_resources(spec: WorkloadSpec, add: Add) -> None:
    parsed: dict[str, Decimal | None] = {}
    for name in ("cpu_request", "memory_request", "cpu_limit", "memory_limit"):
        value: str = getattr(spec, name)
        parsed[name] = None
        if value == "" and name.endswith("_limit"):
            continue
        if value == "":
            add(name, _("%(field)s is required (e.g. 1, 500m, 1Gi).") % {"field": name})
            continue
        amount = _quantity(value)
        if amount is None:
            example = "1, 500m" if name.startswith("cpu") else "512Mi, 1Gi"
            add(
                name,
                _("%(field)s: '%(value)s' is not a Kubernetes quantity; use e.g. %(example)s.")
                % {"field": name, "value": value, "example": example},
            )
        elif amount <= 0:
            add(name, _("%(field)s must be greater than zero.") % {"field": name})
        elif name.startswith("cpu") and amount > MAX_CPU_CORES:
            add(
                name,
                _("%(field)s must be at most 64 cores, not '%(value)s'.") % {"field": name, "value": value},
            )
        elif name.startswith("memory") and amount > MAX_MEMORY_BYTES:
            add(
                name, _("%(field)s must be at most 256Gi, not '%(value)s'.") % {"field": name, "value": value}
            )
        else:
            parsed[name] = amount
    for kind in ("cpu", "memory"):
        request, limit = parsed[f"{kind}_request"], parsed[f"{kind}_limit"]
        if request is not None and limit is not None and limit < request:
            add(
                f"{kind}_limit",
                _("%(field)s (%(limit)s) must not be lower than %(request_field)s (%(request)s).")
                % {
                    "field": f"{kind}_limit",
                    "limit": getattr(spec, f"{kind}_limit"),
                    "request_field": f"{kind}_request",
                    "request": getattr(spec, f"{kind}_request"),
                },
            )


def _check_network(spec: WorkloadSpec, add: Add) -> None:
    for name in ("container_port", "service_port", "metrics_port"):
        value = getattr(spec, name)
        if value is None and name == "metrics_port":
            continue
        if not 1 <= value <= 65535:
            add(
                name, _("%(field)s must be from 1 to 65535, not %(value)d.") % {"field": name, "value": value}
            )
    if spec.service_type not in SERVICE_TYPES:
        add(
            "service_type",
            _("service_type must be one of %(choices)s, not '%(value)s'.")
            % {"choices": ", ".join(SERVICE_TYPES), "value": spec.service_type},
        )
    for name in ("health_path", "metrics_path", "eureka_deregister_path"):
        value = getattr(spec, name)
        if not _HTTP_PATH.fullmatch(value):
            add(
                name,
                _(
                    "%(field)s '%(value)s' must start with '/' and contain only letters, digits and "
                    "._~%%/:@+=,- (no spaces, quotes or shell characters)."
                )
                % {"field": name, "value": value},
            )
    for name, low in (
        ("eureka_response_cache_seconds", 0),
        ("registry_refresh_seconds", 1),
        ("loadbalancer_cache_seconds", 0),
    ):
        if not low <= getattr(spec, name) <= MAX_CACHE_SECONDS:
            add(
                name,
                _("%(field)s must be from %(low)d to %(high)d seconds.")
                % {"field": name, "low": low, "high": MAX_CACHE_SECONDS},
            )


def _check_runtime(spec: WorkloadSpec, add: Add) -> None:
    if spec.startup_seconds < 0:
        add("startup_seconds", _("startup_seconds must not be negative."))
    elif spec.startup_seconds > MAX_STARTUP_SECONDS:
        add(
            "startup_seconds",
            _("startup_seconds must be at most %(max)d (one hour).") % {"max": MAX_STARTUP_SECONDS},
        )
    if "\n" in spec.runtime_options or "\r" in spec.runtime_options or "\0" in spec.runtime_options:
        add("runtime_options", _("runtime_options must be a single line (no line breaks or NUL)."))

    seen: set[str] = set()
    reserved = _reserved_env(spec)
    if not isinstance(spec.env_vars, tuple | list):
        add("env_vars", _("env_vars must be a list of name/value pairs."))
        return
    for pair in spec.env_vars:
        if not (isinstance(pair, tuple | list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            add("env_vars", _("env_vars must be a list of name/value pairs."))
            continue
        name, value = pair
        if problem := _env_name_problem(name, seen=seen, reserved=reserved):
            add("env_vars", problem)
        if "\0" in value:
            add("env_vars", _("the value of '%(name)s' must not contain NUL.") % {"name": name})
        seen.add(name)
    _check_secret_env(spec, add, plain=seen, reserved=reserved)


def _check_secret_env(spec: WorkloadSpec, add: Add, *, plain: set[str], reserved: dict[str, str]) -> None:
    # Errors go to "secret_env_vars", the field people type secrets into (the spec only holds names).
    if not isinstance(spec.secret_env_names, tuple | list) or not all(
        isinstance(name, str) for name in spec.secret_env_names
    ):
        add("secret_env_vars", _("secret_env_names must be a list of names."))
        return
    seen: set[str] = set()
    for name in spec.secret_env_names:
        if problem := _env_name_problem(name, seen=seen, reserved=reserved, plain=plain):
            add("secret_env_vars", problem)
        seen.add(name)


def _env_name_problem(
    name: str, *, seen: set[str], reserved: dict[str, str], plain: set[str] | None = None
) -> str | None:
    if not _ENV_NAME.fullmatch(name):
        return _("environment variable name '%(name)s' must match [A-Za-z_][A-Za-z0-9_]*.") % {"name": name}
    if name in seen:
        return _("environment variable '%(name)s' is set twice.") % {"name": name}
    if plain and name in plain:
        return _("'%(name)s' is both a plain and a secret environment variable; keep one.") % {"name": name}
    if name in reserved:
        return _("environment variable '%(name)s' is set by the platform; use %(instead)s instead.") % {
            "name": name,
            "instead": reserved[name],
        }
    return None


def _reserved_env(spec: WorkloadSpec) -> dict[str, str]:
    reserved = {}
    if spec.language == "java":
        reserved[JAVA_OPTIONS_ENV] = "runtime_options"
    if spec.logs_to_pipeline:
        reserved.update(dict.fromkeys((LOG_URL_ENV, LOG_KEY_ENV), "logs_to_pipeline"))
    return reserved


def _check_overrides(spec: WorkloadSpec, add: Add) -> None:
    if not isinstance(spec.overrides, tuple | list):
        add("overrides", _("overrides must be a list of knob/value pairs."))
        return
    seen: set[str] = set()
    for pair in spec.overrides:
        if not (isinstance(pair, tuple | list) and len(pair) == 2 and isinstance(pair[0], str)):
            add("overrides", _("overrides must be a list of knob/value pairs."))
            continue
        name, value = pair
        knob = OVERRIDABLE.get(name)
        if knob is None:
            add(
                "overrides",
                _("'%(name)s' is not an overridable setting; known: %(known)s.")
                % {"name": name, "known": ", ".join(sorted(OVERRIDABLE))},
            )
        elif name in seen:
            add("overrides", _("'%(name)s' is overridden twice.") % {"name": name})
        elif spec.language not in knob.languages:
            add(
                "overrides",
                _("'%(name)s' applies only to %(languages)s.")
                % {"name": name, "languages": ", ".join(knob.languages)},
            )
        elif not _is_int(value) or not knob.lowest <= value <= knob.highest:
            add(
                "overrides",
                _("'%(name)s' must be a whole number from %(low)d to %(high)d.")
                % {"name": name, "low": knob.lowest, "high": knob.highest},
            )
        seen.add(name)


# --------------------------------------------------------------------------------------------------------
# Rendering


class _Guardrails:
    def __init__(self, spec: WorkloadSpec) -> None:
        self.spec = spec
        self.items: list[Guardrail] = []
        self.overrides: dict[str, Any] = dict(spec.overrides)

    def info(self, code: str, message: str) -> None:
        self.items.append(Guardrail(code=code, level="info", message=str(message)))

    def warning(self, code: str, message: str) -> None:
        self.items.append(Guardrail(code=code, level="warning", message=str(message)))

    def knob(self, name: str, explanation: str) -> int:
        """The knob's value for this spec, recorded as a guardrail under the knob's name."""
        knob = OVERRIDABLE[name]
        default = knob.default(self.spec)
        if name not in self.overrides:
            self.info(name, explanation)
            return default
        value = self.overrides[name]
        low, high = knob.safe_minimum(self.spec), knob.safe_maximum(self.spec)
        unsafe = value < low or (high is not None and value > high)
        params = {"name": name, "value": value, "default": default, "why": explanation}
        if unsafe:
            safe = f"{low}-{high}" if high is not None else f">= {low}"
            message = _(
                "%(name)s overridden to %(value)s (default %(default)s), outside the safe range %(safe)s. "
                "Why the default: %(why)s"
            ) % {**params, "safe": safe}
        else:
            message = _(
                "%(name)s overridden to %(value)s (default %(default)s). Why the default: %(why)s"
            ) % (params)
        self.items.append(
            Guardrail(code=name, level="warning" if unsafe else "info", message=str(message), overridden=True)
        )
        return value


def metrics_port(spec: WorkloadSpec) -> int:
    return spec.metrics_port or spec.container_port


def scrape_annotations(spec: WorkloadSpec) -> dict[str, str]:
    """The ``prometheus.io/*`` pod annotations an in-cluster Prometheus's pod discovery reads (the portal's
    own discovery reads the same values from the environment's configuration)."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/path": spec.metrics_path,
        "prometheus.io/port": str(metrics_port(spec)),
    }


def render(spec: WorkloadSpec) -> Rendered:
    """Service, Deployment, HPA (and PDB) for ``spec``, in apply order; raises ValueError if invalid."""
    errors = spec_errors(spec)
    if errors:
        details = "; ".join(f"{field}: {' '.join(messages)}" for field, messages in errors.items())
        raise ValueError(f"invalid workload spec: {details}")

    rails = _Guardrails(spec)
    labels = _labels(spec)
    selector = _selector(spec)
    objects = [_service(spec, labels, selector)]
    if uses_env_secret(spec):
        # Before the Deployment, so new pods never start referring to keys that do not exist yet.
        objects.append(env_secret(spec))
    objects += [_deployment(spec, labels, selector, rails), _hpa(spec, labels, rails)]
    if spec.service_monitor:
        objects.append(_service_monitor(spec, labels, selector))
    if spec.hpa_min >= 2:
        objects.append(_pdb(spec, labels, selector))
        rails.info(
            "pdb",
            _(
                "A PodDisruptionBudget lets node drains evict at most one pod at a time, because the "
                "autoscaler keeps at least %(min)d pods."
            )
            % {"min": spec.hpa_min},
        )
    else:
        rails.info(
            "pdb",
            _("No PodDisruptionBudget: with a single pod it would block node drains; raise hpa_min to 2."),
        )
    return Rendered(objects=objects, guardrails=rails.items)


def _labels(spec: WorkloadSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": spec.project,
        "app.kubernetes.io/instance": f"{spec.project}-{spec.environment}",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "opsportal.io/project": spec.project,
        "opsportal.io/environment": spec.environment,
    }


def _selector(spec: WorkloadSpec) -> dict[str, str]:
    # Selectors are immutable; only labels that can never change for this object belong in them.
    return {
        "app.kubernetes.io/name": spec.project,
        "app.kubernetes.io/instance": f"{spec.project}-{spec.environment}",
    }


def _metadata(spec: WorkloadSpec, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": spec.project, "namespace": spec.namespace, "labels": dict(labels)}


def secret_name(spec: WorkloadSpec) -> str:
    return f"{spec.project}-env"


def uses_env_secret(spec: WorkloadSpec) -> bool:
    """Whether the container reads anything from the env Secret (the secret variables, or a log pipeline
    URL that carries the proxy's password)."""
    return bool(spec.secret_env_names) or (spec.logs_to_pipeline and spec.log_redis_url_secret)


def _log_env(spec: WorkloadSpec, rails: _Guardrails) -> list[dict[str, Any]]:
    if not spec.logs_to_pipeline:
        return []
    if not spec.log_redis_key:
        # No cluster chosen yet (a ticket before approval): the address is the chosen cluster's pipeline's.
        rails.info(
            "log_pipeline",
            _(
                "The service will get %(url)s and %(key)s from the log pipeline of the cluster chosen at "
                "approval."
            )
            % {"url": LOG_URL_ENV, "key": LOG_KEY_ENV},
        )
        return []
    if spec.log_redis_url_secret:
        url: dict[str, Any] = {
            "name": LOG_URL_ENV,
            "valueFrom": {"secretKeyRef": {"name": secret_name(spec), "key": LOG_URL_ENV}},
        }
        where = _("from the Secret %(secret)s") % {"secret": secret_name(spec)}
    else:
        url = {"name": LOG_URL_ENV, "value": spec.log_redis_url}
        where = _("as a plain value (the proxy has no password)")
    rails.info(
        "log_pipeline",
        _(
            "The service logs to the cluster's log pipeline: %(url_env)s=%(url)s (%(where)s) and "
            "%(key_env)s=%(key)s. It pushes its JSON log lines with LPUSH to that key; the proxy writes them "
            "to Kafka. The address is read at provisioning and at each configuration apply."
        )
        % {
            "url_env": LOG_URL_ENV,
            "url": spec.log_redis_url,
            "where": where,
            "key_env": LOG_KEY_ENV,
            "key": spec.log_redis_key,
        },
    )
    return [url, {"name": LOG_KEY_ENV, "value": spec.log_redis_key}]


def env_secret(spec: WorkloadSpec) -> dict[str, Any]:
    """The Secret holding the secret environment variables, without any data: previews and diffs show
    this; only ``secret_with_values`` (at apply time) adds the values."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {**_metadata(spec, _labels(spec)), "name": secret_name(spec)},
        "type": "Opaque",
    }


def secret_with_values(secret: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """``secret`` with ``values`` as its data. ``data``, not ``stringData``: under server-side apply a key
    dropped from stringData stays in the Secret, while a key dropped from data is removed."""
    data = {name: base64.b64encode(value.encode()).decode() for name, value in sorted(values.items())}
    result = {**secret}
    if data:
        result["data"] = data
    return result


def _service(spec: WorkloadSpec, labels: dict[str, str], selector: dict[str, str]) -> dict[str, Any]:
    ports = [{"name": PORT_NAME, "port": spec.service_port, "targetPort": PORT_NAME, "protocol": "TCP"}]
    if spec.service_monitor and metrics_port(spec) != spec.container_port:
        # A ServiceMonitor scrapes the Service's endpoints, which list only the Service's ports.
        port = metrics_port(spec)
        ports.append({"name": METRICS_PORT_NAME, "port": port, "targetPort": port, "protocol": "TCP"})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, labels),
        "spec": {"type": spec.service_type, "selector": dict(selector), "ports": ports},
    }


def _service_monitor(spec: WorkloadSpec, labels: dict[str, str], selector: dict[str, str]) -> dict[str, Any]:
    """The Prometheus Operator's way to the company's "one scraper per service, selected by its labels":
    the environment's own Service (matched by the selector labels, in its namespace only), the metrics
    path and port of the request, and the labels the portal's panels select on."""
    port = PORT_NAME if metrics_port(spec) == spec.container_port else METRICS_PORT_NAME
    relabel = [
        {"action": "replace", "targetLabel": name, "replacement": value}
        for name, value in (("project", spec.project), ("env", spec.environment), ("service", spec.project))
    ]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(spec, labels),
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "namespaceSelector": {"matchNames": [spec.namespace]},
            "endpoints": [
                {
                    "port": port,
                    "path": spec.metrics_path,
                    "scheme": "http",
                    "relabelings": [
                        *relabel,
                        {
                            "action": "replace",
                            "sourceLabels": ["__meta_kubernetes_pod_name"],
                            "targetLabel": "pod",
                        },
                    ],
                }
            ],
        },
    }


def _startup_allowance(spec: WorkloadSpec) -> int:
    minimum = LANGUAGE_MIN_STARTUP_ALLOWANCE.get(spec.language, DEFAULT_MIN_STARTUP_ALLOWANCE)
    return max(math.ceil(spec.startup_seconds * STARTUP_ALLOWANCE_FACTOR), minimum)


def _http_probe(spec: WorkloadSpec, *, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": spec.health_path, "port": PORT_NAME, "scheme": "HTTP"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
        "successThreshold": 1,
    }


def _probes(spec: WorkloadSpec, rails: _Guardrails) -> dict[str, Any]:
    timeout = rails.knob(
        "probe_timeout_seconds",
        _(
            "Probes wait %(timeout)d s for an answer and a pod is only restarted or taken out of the "
            "Service after %(failures)d failures in a row: a 1 s timeout restarted slow but healthy services."
        )
        % {
            "timeout": OVERRIDABLE["probe_timeout_seconds"].default(spec),
            "failures": PROBE_FAILURE_THRESHOLD,
        },
    )
    startup_on = rails.knob(
        "startup_probe_enabled",
        _(
            "Without a start-up probe the liveness probe starts after initialDelaySeconds whatever the "
            "start takes: a start slower than that is killed and restarts in a loop (CrashLoopBackOff), "
            "as Spring Boot services did before the start-up probe."
        ),
    )
    allowance = _startup_allowance(spec)
    # A probe that can take longer than its period would overlap the next one.
    startup_period = max(STARTUP_PROBE_PERIOD, timeout)
    startup_failures = math.ceil(allowance / startup_period)
    startup_info = _(
        "A start-up probe gives the application %(allowance)d s to answer on %(path)s (%(period)d s x "
        "%(failures)d tries; expected start-up %(expected)d s x 1.5, at least %(minimum)d s for "
        "%(language)s). Liveness and readiness only begin after it succeeds, so a slow start is never "
        "killed; no initialDelaySeconds guessing."
    ) % {
        "allowance": startup_period * startup_failures,
        "path": spec.health_path,
        "period": startup_period,
        "failures": startup_failures,
        "expected": spec.startup_seconds,
        "minimum": LANGUAGE_MIN_STARTUP_ALLOWANCE.get(spec.language, DEFAULT_MIN_STARTUP_ALLOWANCE),
        "language": spec.language,
    }
    if startup_on:
        rails.info("startup_probe", startup_info)
    delay = rails.knob(
        "probe_initial_delay_seconds",
        _(
            "The start-up probe holds readiness and liveness back until the application answers, so no "
            "initial delay is needed; without it the delay must cover the slowest start (%(allowance)d s)."
        )
        % {"allowance": allowance},
    )
    period = max(PROBE_PERIOD, timeout)
    probes = {
        "readinessProbe": _http_probe(spec, period=period, timeout=timeout, failures=PROBE_FAILURE_THRESHOLD),
        "livenessProbe": _http_probe(spec, period=period, timeout=timeout, failures=PROBE_FAILURE_THRESHOLD),
    }
    if delay:
        for probe in probes.values():
            probe["initialDelaySeconds"] = delay
    if not startup_on:
        return probes
    return {
        "startupProbe": _http_probe(spec, period=startup_period, timeout=timeout, failures=startup_failures),
        **probes,
    }


# The hook's shell script when the pod is registered in Eureka. It sets the status override while the
# application still serves (a DELETE on the server would be undone by the client's next heartbeat; the
# override survives them), waits out the stale window, and only then lets the kubelet send SIGTERM. A
# failed call still waits (the wait also covers the Service endpoints) but then fails the hook, so the
# kubelet records a FailedPreStopHook event; the cause goes to the hook's output and the container's log.
# wget gets its time limit from timeout(1): busybox builds without FEATURE_WGET_TIMEOUT (Debian's
# busybox-static 1.35, the sandbox's images) have no -T and crash on it.
_EUREKA_PRESTOP = """\
url={url}; body={body}; helper={helper}
say() {{ echo "opsportal preStop: $*"; echo "opsportal preStop: $*" 2>/dev/null >/proc/1/fd/2; }}
fail=0
if [ -x "$helper" ]; then out=$("$helper" -t {timeout} "$url" "$body" 2>&1) || fail=1
elif command -v wget >/dev/null 2>&1; then
  limit=; if command -v timeout >/dev/null 2>&1; then limit="timeout {timeout}"; fi
  out=$($limit wget -q -O /dev/null --header {header} --post-data "$body" "$url" 2>&1) || fail=1
elif command -v curl >/dev/null 2>&1; then
  out=$(curl -fsS -o /dev/null -m {timeout} -X POST -H {header} -d "$body" "$url" 2>&1) || fail=1
else out="no HTTP client in the image: neither $helper nor wget nor curl"; fail=1
fi
if [ "$fail" = 0 ]; then say "OUT_OF_SERVICE in Eureka (POST $url); waiting {sleep} s before SIGTERM"
else say "de-registration failed (POST $url): $out; waiting {sleep} s before SIGTERM all the same"
fi
sleep {sleep}
exit "$fail"
"""


def _prestop_command(spec: WorkloadSpec, sleep: int) -> list[str]:
    if not spec.eureka_enabled:
        return ["/bin/sh", "-c", f"sleep {sleep}"]
    script = _EUREKA_PRESTOP.format(
        url=shlex.quote(f"http://127.0.0.1:{spec.container_port}{spec.eureka_deregister_path}"),
        body=shlex.quote('{"status":"OUT_OF_SERVICE"}'),
        helper=shlex.quote(PRESTOP_HTTP_POST),
        header=shlex.quote("Content-Type: application/json"),
        timeout=DEREGISTER_TIMEOUT,
        sleep=sleep,
    )
    return ["/bin/sh", "-c", script]


def hook_timeout(spec: WorkloadSpec) -> int:
    """How long the preStop hook may spend before its wait: the de-registration call's timeout."""
    return DEREGISTER_TIMEOUT if spec.eureka_enabled else 0


def _knob_value(spec: WorkloadSpec, name: str) -> int:
    overrides = dict(spec.overrides)
    return overrides[name] if name in overrides else OVERRIDABLE[name].default(spec)


@dataclass(frozen=True)
class StopBudget:
    """How a pod of ``spec`` stops: the worst-case stale window and what it is made of, the preStop wait
    (the window unless ops overrode it), and the termination grace period that covers it all."""

    parts: tuple[WindowPart, ...]
    stale_window: int
    sleep: int
    hook_timeout: int
    shutdown: int
    grace: int
    deregister_path: str  # "" without Eureka

    @property
    def sleep_short(self) -> bool:
        return self.sleep < self.stale_window


def stop_budget(spec: WorkloadSpec) -> StopBudget:
    """The figures ``render`` uses for the hook and the grace period; ``spec`` must be valid."""
    parts = stale_window_parts(spec)
    sleep = _knob_value(spec, "prestop_sleep_seconds")
    shutdown = _knob_value(spec, "shutdown_seconds")
    timeout = hook_timeout(spec)
    return StopBudget(
        parts=parts,
        stale_window=sum(part.seconds for part in parts),
        sleep=sleep,
        hook_timeout=timeout,
        shutdown=shutdown,
        grace=timeout + sleep + shutdown,
        deregister_path=spec.eureka_deregister_path if spec.eureka_enabled else "",
    )


def _lifecycle(spec: WorkloadSpec, rails: _Guardrails) -> tuple[dict[str, Any], int]:
    budget = stop_budget(spec)
    if spec.eureka_enabled:
        why = _(
            "Before stopping, the pod marks itself OUT_OF_SERVICE in Eureka (POST %(path)s, while it still "
            "serves) and waits %(sleep)d s, the worst-case stale window: Eureka server response cache "
            "%(server)d s + clients' registry fetch interval %(fetch)d s + callers' load-balancer cache "
            "%(lb)d s + margin %(margin)d s. Only then is it sent SIGTERM. A failed de-registration fails "
            "the hook (FailedPreStopHook) after the wait."
        ) % {
            "path": spec.eureka_deregister_path,
            "sleep": budget.stale_window,
            "server": spec.eureka_response_cache_seconds,
            "fetch": spec.registry_refresh_seconds,
            "lb": spec.loadbalancer_cache_seconds,
            "margin": STALE_WINDOW_MARGIN,
        }
        if spec.eureka_deregister_path == LEGACY_DEREGISTER_PATH:
            rails.warning(
                "eureka_deregister_path",
                _(
                    "%(legacy)s is the endpoint of Spring Cloud Finchley and Greenwich (2018-2019); every "
                    "Spring Cloud since 2020 answers 404 there and serves %(path)s instead (the application "
                    "must expose it: management.endpoints.web.exposure.include=serviceregistry)."
                )
                % {"legacy": LEGACY_DEREGISTER_PATH, "path": DEREGISTER_PATH},
            )
    else:
        why = _(
            "Before stopping, the pod waits %(sleep)d s so the Service stops routing to it before the "
            "application exits."
        ) % {"sleep": budget.stale_window}
    sleep = rails.knob("prestop_sleep_seconds", why)
    shutdown = rails.knob(
        "shutdown_seconds",
        _("After the preStop wait the application gets %(shutdown)d s to finish in-flight requests.")
        % {"shutdown": _default_shutdown(spec)},
    )
    if budget.hook_timeout:
        rails.info(
            "termination_grace",
            _(
                "terminationGracePeriodSeconds is %(grace)d s (de-registration timeout %(timeout)d s + "
                "preStop wait %(sleep)d s + shutdown %(shutdown)d s), so the kubelet never kills the pod "
                "while it is still draining."
            )
            % {"grace": budget.grace, "timeout": budget.hook_timeout, "sleep": sleep, "shutdown": shutdown},
        )
    else:
        rails.info(
            "termination_grace",
            _(
                "terminationGracePeriodSeconds is %(grace)d s (preStop %(sleep)d s + shutdown %(shutdown)d "
                "s), so the kubelet never kills the pod while it is still draining."
            )
            % {"grace": budget.grace, "sleep": sleep, "shutdown": shutdown},
        )
    return {"preStop": {"exec": {"command": _prestop_command(spec, sleep)}}}, budget.grace


def _xmx_bytes(runtime_options: str) -> int | None:
    matches = _XMX.findall(runtime_options)
    if not matches:
        return None
    digits, unit = matches[-1]  # the JVM honours the last occurrence
    return int(digits) * _JVM_UNITS[unit.lower()]


def _java_env(spec: WorkloadSpec, rails: _Guardrails, memory_limit: str) -> list[dict[str, str]]:
    percentage = rails.knob(
        "jvm_max_ram_percentage",
        _(
            "The JVM sizes its heap from the container's memory limit (MaxRAMPercentage=%(pct)d), not the "
            "host's memory, leaving the rest for metaspace, threads and buffers."
        )
        % {"pct": OVERRIDABLE["jvm_max_ram_percentage"].default(spec)},
    )
    cpu = spec.cpu_limit or spec.cpu_request
    processors = max(1, math.ceil(parse_quantity(cpu)))
    rails.info(
        "jvm_processors",
        _(
            "The JVM is told it has %(count)d processor(s) (ActiveProcessorCount, from the CPU %(source)s) "
            "instead of counting the host's CPUs, which would oversize GC and thread pools."
        )
        % {"count": processors, "source": "limit" if spec.cpu_limit else "request"},
    )
    # Initial = max, like -Xms = -Xmx in the seed article: the heap never grows under load, and a limit
    # that is too small fails at start-up instead of during traffic.
    flags = [
        f"-XX:MaxRAMPercentage={percentage}.0",
        f"-XX:InitialRAMPercentage={percentage}.0",
        f"-XX:ActiveProcessorCount={processors}",
    ]
    if spec.runtime_options.strip():
        flags.append(spec.runtime_options.strip())

    xmx = _xmx_bytes(spec.runtime_options)
    if xmx is not None:
        limit_bytes = parse_quantity(memory_limit)
        if xmx >= limit_bytes:
            rails.warning(
                "jvm_xmx_over_limit",
                _(
                    "runtime_options sets a fixed heap (-Xmx) of %(xmx)d MiB, not below the memory limit "
                    "%(limit)s: the heap plus the JVM's own memory will exceed the limit and the pod will be "
                    "OOM-killed. Remove -Xmx or raise memory_limit."
                )
                % {"xmx": xmx // 1024**2, "limit": memory_limit},
            )
        else:
            rails.info(
                "jvm_xmx_fixed",
                _(
                    "runtime_options sets a fixed heap (-Xmx), which overrides MaxRAMPercentage and does not "
                    "follow later changes of the memory limit; prefer the percentage."
                ),
            )
    for name in [name for name, _value in spec.env_vars] + list(spec.secret_env_names):
        if name in _JVM_OVERRIDING_ENV:
            rails.warning(
                "jvm_env_override",
                _("%(name)s overrides JAVA_TOOL_OPTIONS and may undo the container-aware JVM flags.")
                % {"name": name},
            )
    return [{"name": JAVA_OPTIONS_ENV, "value": " ".join(flags)}]


def _deployment(
    spec: WorkloadSpec, labels: dict[str, str], selector: dict[str, str], rails: _Guardrails
) -> dict[str, Any]:
    memory_limit = spec.memory_limit or spec.memory_request
    probes = _probes(spec, rails)
    lifecycle, grace = _lifecycle(spec, rails)

    env: list[dict[str, Any]] = []
    if spec.language == "java":
        env.extend(_java_env(spec, rails, memory_limit))
    env.extend({"name": name, "value": value} for name, value in spec.env_vars)
    env.extend(
        {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name(spec), "key": name}}}
        for name in spec.secret_env_names
    )
    env.extend(_log_env(spec, rails))

    limits = {"memory": memory_limit}
    if spec.cpu_limit:
        limits["cpu"] = spec.cpu_limit
    else:
        rails.info(
            "cpu_limit",
            _("No CPU limit: the container may use idle CPU beyond its request instead of being throttled."),
        )
    if not spec.memory_limit:
        rails.info(
            "memory_limit",
            _(
                "The memory limit defaults to the request (%(memory)s): the pod never counts on memory the "
                "scheduler did not reserve for it, which would be taken back by an OOM kill."
            )
            % {"memory": memory_limit},
        )

    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "ports": [{"name": PORT_NAME, "containerPort": spec.container_port, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": spec.cpu_request, "memory": spec.memory_request}, "limits": limits},
        **probes,
        "lifecycle": lifecycle,
    }
    if env:
        container["env"] = env

    progress_deadline = max(MIN_PROGRESS_DEADLINE, _startup_allowance(spec) + PROGRESS_DEADLINE_MARGIN)
    rails.info(
        "rollout",
        _(
            "Rolling updates start a new pod before stopping an old one (maxUnavailable 0, maxSurge 25%%) "
            "and are reported as failed after %(deadline)d s without progress."
        )
        % {"deadline": progress_deadline},
    )
    template_metadata: dict[str, Any] = {"labels": dict(labels), "annotations": scrape_annotations(spec)}
    if uses_env_secret(spec):
        template_metadata["annotations"][SECRET_ENV_DIGEST_ANNOTATION] = spec.secret_env_digest
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, labels),
        "spec": {
            "replicas": spec.replicas,
            "selector": {"matchLabels": dict(selector)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "progressDeadlineSeconds": progress_deadline,
            "revisionHistoryLimit": 10,
            "template": {
                "metadata": template_metadata,
                "spec": {"terminationGracePeriodSeconds": grace, "containers": [container]},
            },
        },
    }


def _hpa(spec: WorkloadSpec, labels: dict[str, str], rails: _Guardrails) -> dict[str, Any]:
    metrics: list[dict[str, Any]] = [_utilization("cpu", spec.hpa_cpu_target)]
    if spec.hpa_memory_target is not None:
        metrics.append(_utilization("memory", spec.hpa_memory_target))
        if spec.language == "java":
            rails.warning(
                "hpa_memory_java",
                _(
                    "Memory-based autoscaling misfires for Java: the JVM keeps the heap it has taken, so "
                    "memory use does not fall after load drops and the autoscaler never scales back down. "
                    "Scale Java services on CPU only."
                ),
            )
    elif spec.language == "java":
        rails.info(
            "hpa_memory_java",
            _("Memory-based autoscaling is off for Java: the JVM heap does not shrink when load drops."),
        )
    down_window = rails.knob(
        "hpa_scale_down_window_seconds",
        _(
            "The autoscaler scales up after %(up)d s of high load but removes pods only after %(down)d s of "
            "low load, one pod (or 10%%) per minute, so short dips do not cause flapping."
        )
        % {"up": HPA_SCALE_UP_WINDOW, "down": OVERRIDABLE["hpa_scale_down_window_seconds"].default(spec)},
    )
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec, labels),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.project},
            "minReplicas": spec.hpa_min,
            "maxReplicas": spec.hpa_max,
            "metrics": metrics,
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": HPA_SCALE_UP_WINDOW,
                    "selectPolicy": "Max",
                    "policies": [
                        {"type": "Percent", "value": 100, "periodSeconds": 60},
                        {"type": "Pods", "value": 4, "periodSeconds": 60},
                    ],
                },
                # A percentage alone would round to zero pods for small deployments and never scale down.
                "scaleDown": {
                    "stabilizationWindowSeconds": down_window,
                    "selectPolicy": "Max",
                    "policies": [
                        {"type": "Pods", "value": 1, "periodSeconds": 60},
                        {"type": "Percent", "value": 10, "periodSeconds": 60},
                    ],
                },
            },
        },
    }


def _utilization(resource: str, target: int) -> dict[str, Any]:
    return {
        "type": "Resource",
        "resource": {"name": resource, "target": {"type": "Utilization", "averageUtilization": target}},
    }


def _pdb(spec: WorkloadSpec, labels: dict[str, str], selector: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec, labels),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": dict(selector)},
            # A crash-looping pod must not block a node drain.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


# --------------------------------------------------------------------------------------------------------
# Storage


def spec_to_dict(spec: WorkloadSpec) -> dict[str, Any]:
    """JSON-ready dict; pairs become two-element lists, which ``spec_from_dict`` turns back into tuples."""
    data = asdict(spec)
    data["env_vars"] = [list(pair) for pair in spec.env_vars]
    data["overrides"] = [list(pair) for pair in spec.overrides]
    data["secret_env_names"] = list(spec.secret_env_names)
    return data


def spec_from_dict(data: dict[str, Any]) -> WorkloadSpec:
    """Inverse of ``spec_to_dict``; raises ValueError on unknown or missing keys. Does not validate values."""
    known = {f.name for f in fields(WorkloadSpec)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown workload spec keys: {', '.join(unknown)}")
    values = dict(data)
    for name in ("env_vars", "overrides"):
        if name in values:
            values[name] = tuple(tuple(pair) for pair in values[name])
    if isinstance(values.get("secret_env_names"), list):
        values["secret_env_names"] = tuple(values["secret_env_names"])
    try:
        return WorkloadSpec(**values)
    except TypeError as exc:  # missing required keys
        raise ValueError(f"incomplete workload spec: {exc}") from exc
