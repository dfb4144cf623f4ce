"""Kubernetes integration: ``KubeClient`` and its small result types."""

from integrations.kubernetes.client import (
    KubeClient,
    PodInfo,
    Rollout,
    RolloutOutcome,
    ServerVersion,
    rollout_status,
)
from integrations.kubernetes.config import Connection, KubeconfigError, parse_kubeconfig

__all__ = [
    "Connection",
    "KubeClient",
    "KubeconfigError",
    "PodInfo",
    "Rollout",
    "RolloutOutcome",
    "ServerVersion",
    "parse_kubeconfig",
    "rollout_status",
]
