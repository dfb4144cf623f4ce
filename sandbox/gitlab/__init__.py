"""GitLab v4 stand-in backed by real bare git repositories (see docs/standins.md)."""

from sandbox.gitlab.server import GitLabStandin, Project

__all__ = ["GitLabStandin", "Project"]
