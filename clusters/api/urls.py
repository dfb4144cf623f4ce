from django.urls import path

from clusters.api import (
    alert_rules,
    clusters,
    environments,
    eureka,
    metrics,
    pipeline_logs,
    prometheus_config,
    terminal,
)

_ENV = "projects/<str:name>/environments/<str:environment>/"

urlpatterns = [
    path("clusters/", clusters.ClusterListCreateView.as_view(), name="api-cluster-list"),
    path("clusters/<int:pk>/", clusters.ClusterDetailView.as_view(), name="api-cluster-detail"),
    path(
        "clusters/<int:pk>/test-connection/",
        clusters.ClusterTestConnectionView.as_view(),
        name="api-cluster-test-connection",
    ),
    path(
        "clusters/prometheus-config/",
        prometheus_config.PrometheusConfigView.as_view(),
        name="api-prometheus-config",
    ),
    path(
        "clusters/prometheus-config/apply/",
        prometheus_config.PrometheusConfigApplyView.as_view(),
        name="api-prometheus-config-apply",
    ),
    path(_ENV, environments.EnvironmentDetailView.as_view(), name="api-environment"),
    path(f"{_ENV}restart/", environments.RestartView.as_view(), name="api-environment-restart"),
    path(f"{_ENV}scale/", environments.ScaleView.as_view(), name="api-environment-scale"),
    path(f"{_ENV}pods/<str:pod>/", environments.PodView.as_view(), name="api-environment-pod"),
    path(f"{_ENV}pods/<str:pod>/logs/", environments.PodLogsView.as_view(), name="api-environment-pod-logs"),
    path(
        f"{_ENV}pipeline-logs/",
        pipeline_logs.PipelineLogsView.as_view(),
        name="api-environment-pipeline-logs",
    ),
    path(f"{_ENV}metrics/", metrics.MetricsView.as_view(), name="api-environment-metrics"),
    path(f"{_ENV}eureka/", eureka.EurekaInstancesView.as_view(), name="api-environment-eureka"),
    path(
        f"{_ENV}eureka/instances/<str:instance>/status/",
        eureka.EurekaStatusView.as_view(),
        name="api-environment-eureka-status",
    ),
    path(f"{_ENV}alert-rules/", alert_rules.AlertRuleListView.as_view(), name="api-environment-alert-rules"),
    path(
        f"{_ENV}alert-rules/<str:rule>/",
        alert_rules.AlertRuleDetailView.as_view(),
        name="api-environment-alert-rule",
    ),
    path(f"{_ENV}config/", environments.ConfigView.as_view(), name="api-environment-config"),
    path(
        f"{_ENV}config/changes/",
        environments.ConfigChangeListView.as_view(),
        name="api-environment-config-changes",
    ),
    path(
        f"{_ENV}config/changes/<int:pk>/",
        environments.ConfigChangeDetailView.as_view(),
        name="api-environment-config-change",
    ),
    path("terminal-sessions/", terminal.TerminalSessionListView.as_view(), name="api-terminal-session-list"),
    path(
        "terminal-sessions/<int:pk>/",
        terminal.TerminalSessionDetailView.as_view(),
        name="api-terminal-session-detail",
    ),
    path(
        "terminal-sessions/<int:pk>/recording",
        terminal.TerminalRecordingView.as_view(),
        name="api-terminal-session-recording",
    ),
    path(
        "terminal-sessions/<int:pk>/commands",
        terminal.TerminalSessionCommandsView.as_view(),
        name="api-terminal-session-commands",
    ),
    path(
        "terminal-commands/", terminal.TerminalCommandSearchView.as_view(), name="api-terminal-command-search"
    ),
    path(
        "terminal-refused-patterns/",
        terminal.RefusedPatternListCreateView.as_view(),
        name="api-terminal-refused-pattern-list",
    ),
    path(
        "terminal-refused-patterns/<int:pk>/",
        terminal.RefusedPatternDetailView.as_view(),
        name="api-terminal-refused-pattern-detail",
    ),
]
