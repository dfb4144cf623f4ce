"""Jenkins integration: ``JenkinsClient``, its small result types and the freestyle config renderer."""

from integrations.jenkins.client import (
    BuildInfo,
    ConsoleChunk,
    JenkinsClient,
    JobInfo,
    error_from_jenkins,
    render_freestyle_config,
)

__all__ = [
    "BuildInfo",
    "ConsoleChunk",
    "JenkinsClient",
    "JobInfo",
    "error_from_jenkins",
    "render_freestyle_config",
]
