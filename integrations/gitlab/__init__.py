"""GitLab integration: ``GitLabClient`` and its small result types."""

from integrations.gitlab.client import Branch, Commit, GitLabClient, Project, Tag, error_from_gitlab

__all__ = ["Branch", "Commit", "GitLabClient", "Project", "Tag", "error_from_gitlab"]
