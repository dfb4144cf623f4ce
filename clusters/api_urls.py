from django.urls import path

from clusters.api import clusters as api

urlpatterns = [
    path("clusters/", api.ClusterListCreateView.as_view(), name="api-cluster-list"),
    path("clusters/<int:pk>/", api.ClusterDetailView.as_view(), name="api-cluster-detail"),
    path(
        "clusters/<int:pk>/test-connection/",
        api.ClusterTestConnectionView.as_view(),
        name="api-cluster-test-connection",
    ),
]
