"""API: a project's Apollo settings, namespaces, items, releases and rollbacks."""

from django.urls import path

from configs import api

NAMESPACE = "projects/<str:name>/apollo/<str:environment>/<str:namespace>/"
urlpatterns: list = [
    path(
        "projects/<str:name>/apollo/settings/", api.ApolloSettingsView.as_view(), name="api-apollo-settings"
    ),
    path(NAMESPACE, api.ApolloNamespaceView.as_view(), name="api-apollo-namespace"),
    path(NAMESPACE + "items/", api.ApolloItemListView.as_view(), name="api-apollo-items"),
    # The key as the last segment, URL-encoded; it may hold "/" (Apollo's own encodedItemKey is the
    # client's business).
    path(NAMESPACE + "items/<path:key>", api.ApolloItemView.as_view(), name="api-apollo-item"),
    path(NAMESPACE + "releases/", api.ApolloReleaseListView.as_view(), name="api-apollo-releases"),
    path(NAMESPACE + "rollback/", api.ApolloRollbackView.as_view(), name="api-apollo-rollback"),
]
