"""Apollo's Open API (the portal's ``/openapi/v1``): items, releases and rollbacks of a namespace."""

from integrations.apollo.client import (
    ApolloClient,
    ApolloItem,
    ApolloNamespace,
    ApolloRelease,
    NamespaceRef,
    item_path,
    parse_apollo_time,
)

__all__ = [
    "ApolloClient",
    "ApolloItem",
    "ApolloNamespace",
    "ApolloRelease",
    "NamespaceRef",
    "item_path",
    "parse_apollo_time",
]
