"""Jenkins stand-in that really runs freestyle jobs' shell steps (see docs/standins.md)."""

from sandbox.jenkins.server import JenkinsStandin

__all__ = ["JenkinsStandin"]
