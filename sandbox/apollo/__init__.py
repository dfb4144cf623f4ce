"""Apollo portal Open API stand-in (consumers, items, releases, rollbacks); see docs/sandbox.md."""

from sandbox.apollo.server import ApolloStandin

__all__ = ["ApolloStandin"]
