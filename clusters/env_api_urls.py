from django.urls import path

from clusters.api import environments as api

_BASE = "projects/<str:name>/environments/<str:environment>/"

urlpatterns = [
    path(_BASE, api.EnvironmentDetailView.as_view(), name="api-environment"),
    path(f"{_BASE}restart/", api.RestartView.as_view(), name="api-environment-restart"),
    path(f"{_BASE}scale/", api.ScaleView.as_view(), name="api-environment-scale"),
    path(f"{_BASE}pods/<str:pod>/", api.PodView.as_view(), name="api-environment-pod"),
    path(f"{_BASE}pods/<str:pod>/logs/", api.PodLogsView.as_view(), name="api-environment-pod-logs"),
    path(f"{_BASE}config/", api.ConfigView.as_view(), name="api-environment-config"),
    path(
        f"{_BASE}config/changes/", api.ConfigChangeListView.as_view(), name="api-environment-config-changes"
    ),
    path(
        f"{_BASE}config/changes/<int:pk>/",
        api.ConfigChangeDetailView.as_view(),
        name="api-environment-config-change",
    ),
]
