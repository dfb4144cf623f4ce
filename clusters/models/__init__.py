"""The runtime's models, one module per sub-domain; import them from here."""

from clusters.models.clusters import (
    Cluster,
    ConfigChange,
    TerminalSession,
    validate_api_url,
    validate_ca_certificate,
    validate_namespace_template,
)
from clusters.models.environments import ProjectEnvironment
from clusters.models.logging import LogPipeline, log_key
from clusters.models.monitoring import AlertRuleFile, AlertRuleSetting, Dashboard, PrometheusConfigState
from clusters.models.terminal import PatternKind, RefusedCommandPattern, TerminalCommand

__all__ = [
    "AlertRuleFile",
    "AlertRuleSetting",
    "Cluster",
    "ConfigChange",
    "Dashboard",
    "LogPipeline",
    "PatternKind",
    "PrometheusConfigState",
    "ProjectEnvironment",
    "RefusedCommandPattern",
    "TerminalCommand",
    "TerminalSession",
    "validate_api_url",
    "validate_ca_certificate",
    "log_key",
    "validate_namespace_template",
]
