"""The monitoring panels and the PromQL behind them: fixed templates, label values escaped.

A user never sends PromQL. A panel is chosen by its id, and its expressions are filled with the values of
one environment (``Scope``) through ``label_value``, which escapes them for a double-quoted PromQL string.
So ``project="x\\"} or up{"`` stays one string and one project cannot read another's series.

Two kinds of series:
- the application's own, scraped from its pods with the target labels the portal sets (``project``,
  ``env``, ``service``, ``namespace``, ``pod``): ``http_requests_total{code}`` and the
  ``http_request_duration_seconds`` histogram (Go and PHP services, and the Prometheus client
  libraries' defaults), or Spring Boot's Micrometer names (``http_server_requests_seconds_*{status}``);
- the cluster's, from cAdvisor (kubelet) and kube-state-metrics, selected by the environment's namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

CONTAINER = "app"  # the one application container of every Deployment the portal renders


@dataclass(frozen=True)
class Scope:
    """The label values one environment's series carry."""

    project: str
    env: str
    namespace: str
    deployment: str
    hpa: str


@dataclass(frozen=True)
class Query:
    legend: str  # a literal, or "{{label}}" to name each series by that label's value
    template: str  # PromQL with {app} {ns} {deployment} {hpa} {container} {window} placeholders


@dataclass(frozen=True)
class Panel:
    id: str
    title: Promise
    unit: str  # the Grafana unit id: reqps, percentunit, s, cores, bytes, short
    queries: tuple[Query, ...]
    description: Promise | str = ""


def label_value(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal (quotes included)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _app(scope: Scope) -> str:
    return f"project={label_value(scope.project)},env={label_value(scope.env)}"


# Requests by status code: the common name first; Micrometer's, relabelled to ``code``, when that is absent.
_REQUESTS = (
    "sum by (code) (rate(http_requests_total{{{app}}}[{window}]))"
    " or sum by (code) (label_replace(rate(http_server_requests_seconds_count{{{app}}}[{window}]),"
    ' "code", "$1", "status", "(.*)"))'
)
_ERRORS = (
    '(sum(rate(http_requests_total{{{app},code=~"5.."}}[{window}])) or vector(0))'
    " / sum(rate(http_requests_total{{{app}}}[{window}]))"
)
_QUANTILE = (
    "histogram_quantile({q}, sum by (le) (rate(http_request_duration_seconds_bucket{{{app}}}[{window}])))"
    " or histogram_quantile({q}, sum by (le) (rate(http_server_requests_seconds_bucket{{{app}}}[{window}])))"
)
_NS = "namespace={ns}"
_CONTAINER = _NS + ",container={container}"

PANELS: tuple[Panel, ...] = (
    Panel(
        "requests",
        _("Requests per second by status code"),
        "reqps",
        (Query("{{code}}", _REQUESTS),),
    ),
    Panel(
        "errors",
        _("Error ratio (5xx)"),
        "percentunit",
        (Query("5xx", _ERRORS),),
    ),
    Panel(
        "latency",
        _("Latency"),
        "s",
        tuple(Query(f"p{q}", _QUANTILE.replace("{q}", f"0.{q}")) for q in ("50", "95", "99")),
    ),
    Panel(
        "cpu",
        _("CPU against request and limit"),
        "cores",
        (
            Query(
                "{{pod}}",
                "sum by (pod) (rate(container_cpu_usage_seconds_total{{" + _CONTAINER + "}}[{window}]))",
            ),
            Query(
                "request",
                "max(kube_pod_container_resource_requests{{" + _CONTAINER + ',resource="cpu"}})',
            ),
            Query("limit", "max(kube_pod_container_resource_limits{{" + _CONTAINER + ',resource="cpu"}})'),
        ),
    ),
    Panel(
        "memory",
        _("Memory against request and limit"),
        "bytes",
        (
            Query("{{pod}}", "sum by (pod) (container_memory_working_set_bytes{{" + _CONTAINER + "}})"),
            Query(
                "request",
                "max(kube_pod_container_resource_requests{{" + _CONTAINER + ',resource="memory"}})',
            ),
            Query("limit", "max(kube_pod_container_resource_limits{{" + _CONTAINER + ',resource="memory"}})'),
        ),
    ),
    Panel(
        "restarts",
        _("Container restarts"),
        "short",
        (Query("{{pod}}", "max by (pod) (kube_pod_container_status_restarts_total{{" + _CONTAINER + "}})"),),
    ),
    Panel(
        "replicas",
        _("Replicas against the autoscaling range"),
        "short",
        (
            Query(
                "available",
                "sum(kube_deployment_status_replicas_available{{" + _NS + ",deployment={deployment}}})",
            ),
            Query("desired", "sum(kube_deployment_spec_replicas{{" + _NS + ",deployment={deployment}}})"),
            Query(
                "min",
                "max(kube_horizontalpodautoscaler_spec_min_replicas{{"
                + _NS
                + ",horizontalpodautoscaler={hpa}}})",
            ),
            Query(
                "max",
                "max(kube_horizontalpodautoscaler_spec_max_replicas{{"
                + _NS
                + ",horizontalpodautoscaler={hpa}}})",
            ),
        ),
    ),
)
_BY_ID = {panel.id: panel for panel in PANELS}

# The request-rate sparkline of the project cockpit: one number per step, all codes.
TRAFFIC = (
    "sum(rate(http_requests_total{{{app}}}[{window}]))"
    " or sum(rate(http_server_requests_seconds_count{{{app}}}[{window}]))"
)
ERROR_RATIO = _ERRORS


def panel_get(panel_id: str) -> Panel | None:
    return _BY_ID.get(panel_id)


# Grafana's own rate range, for dashboards: it adapts to the dashboard's interval and scrape interval.
GRAFANA_RATE_INTERVAL = "$__rate_interval"


def _window(window_seconds: int | None, grafana: bool) -> str:
    if grafana:
        return GRAFANA_RATE_INTERVAL
    return f"{int(window_seconds or 0)}s"


def render(template: str, scope: Scope, *, window_seconds: int | None = None, grafana: bool = False) -> str:
    """One template filled for ``scope``; every value is escaped, the window is an integer number of
    seconds (or Grafana's ``$__rate_interval`` for a dashboard)."""
    return template.format(
        app=_app(scope),
        ns=label_value(scope.namespace),
        deployment=label_value(scope.deployment),
        hpa=label_value(scope.hpa),
        container=label_value(CONTAINER),
        window=_window(window_seconds, grafana),
    )


def panel_queries(
    panel: Panel, scope: Scope, *, window_seconds: int | None = None, grafana: bool = False
) -> list[tuple[str, str]]:
    """(legend, expression) for each line of ``panel`` in ``scope``."""
    return [
        (query.legend, render(query.template, scope, window_seconds=window_seconds, grafana=grafana))
        for query in panel.queries
    ]


def rate_window(step_seconds: float, scrape_interval: int) -> int:
    """The ``rate()`` range for a step: at least four scrapes (so a missed scrape leaves two samples), and
    the step plus one scrape, so the increase between the last sample of one step and the first of the
    next is counted too."""
    return int(max(4 * scrape_interval, step_seconds + scrape_interval))


# --- the log proxy (logproxy/) of a cluster's log pipeline -------------------------------------------

# Lines per second into the proxy (pushed by services) and out of it (acknowledged by Kafka), summed over
# its pods. The portal's http_sd (or the ServiceMonitor) labels its targets service="logproxy" and
# cluster=<the cluster's name>.
LOGPROXY_THROUGHPUT = {
    "in": "sum(rate(logproxy_lines_in_total{{{sel}}}[{window}s]))",
    "out": "sum(rate(logproxy_lines_out_total{{{sel}}}[{window}s]))",
}


def logproxy_queries(*, cluster: str, namespace: str, window: int) -> dict[str, str]:
    """The throughput expressions of one cluster's proxy, its label values escaped."""
    sel = f'service="logproxy",cluster={label_value(cluster)},namespace={label_value(namespace)}'
    return {
        name: template.format(sel=sel, window=int(window)) for name, template in LOGPROXY_THROUGHPUT.items()
    }
