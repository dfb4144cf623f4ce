from django.urls import path

from clusters.views import alert_rules, clusters, environments, eureka, monitoring, pipeline_logs, terminal

_ENV = "projects/<str:name>/env/<str:environment>/"

urlpatterns = [
    path("clusters/", clusters.cluster_list, name="cluster-list"),
    path("clusters/new/", clusters.cluster_create, name="cluster-create"),
    path("clusters/<int:pk>/", clusters.cluster_edit, name="cluster-edit"),
    path(
        "clusters/<int:pk>/test-connection/", clusters.cluster_test_connection, name="cluster-test-connection"
    ),
    path("api/monitoring/sd/<str:cluster>/", monitoring.prometheus_sd, name="prometheus-sd"),
    path(
        "clusters/prometheus-config/apply/",
        clusters.prometheus_config_apply,
        name="cluster-prometheus-config-apply",
    ),
    path(_ENV, environments.environment_page, name="environment-page"),
    path(f"{_ENV}restart/", environments.environment_restart, name="environment-restart"),
    path(f"{_ENV}teardown/", environments.environment_teardown, name="environment-teardown"),
    path(f"{_ENV}scale/", environments.environment_scale, name="environment-scale"),
    path(f"{_ENV}pods/<str:pod>/delete/", environments.environment_delete_pod, name="environment-delete-pod"),
    path(
        f"{_ENV}pods/<str:pod>/logs/",
        environments.environment_logs_download,
        name="environment-logs-download",
    ),
    path(f"{_ENV}pipeline-logs/", pipeline_logs.pipeline_logs_search, name="environment-pipeline-logs"),
    path(f"{_ENV}config/", environments.environment_config, name="environment-config"),
    path(f"{_ENV}config/changes/", environments.config_change_list, name="environment-config-changes"),
    path(
        f"{_ENV}config/changes/<int:pk>/", environments.config_change_detail, name="environment-config-change"
    ),
    path(f"{_ENV}eureka/", eureka.eureka_section, name="environment-eureka"),
    path(f"{_ENV}eureka/<str:instance>/status/", eureka.eureka_status, name="environment-eureka-status"),
    path(f"{_ENV}alert-rules/", alert_rules.alert_rules_page, name="environment-alert-rules"),
    path(f"{_ENV}alert-rules/<str:rule>/", alert_rules.alert_rule_save, name="environment-alert-rule"),
    path(f"{_ENV}terminal/", terminal.terminal_page, name="terminal"),
    path("terminal-sessions/", terminal.session_list, name="terminal-session-list"),
    path("terminal-sessions/<int:pk>/", terminal.session_replay, name="terminal-session-replay"),
    path("terminal-commands/", terminal.command_search, name="terminal-command-search"),
    path("terminal-refused-patterns/", terminal.refused_patterns, name="terminal-refused-patterns"),
    path(
        "terminal-refused-patterns/<int:pk>/delete/",
        terminal.refused_pattern_delete,
        name="terminal-refused-pattern-delete",
    ),
]
