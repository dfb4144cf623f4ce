from django.urls import path

from clusters.views import environments as views

_BASE = "projects/<str:name>/env/<str:environment>/"

urlpatterns = [
    path(_BASE, views.environment_page, name="environment-page"),
    path(f"{_BASE}restart/", views.environment_restart, name="environment-restart"),
    path(f"{_BASE}scale/", views.environment_scale, name="environment-scale"),
    path(f"{_BASE}pods/<str:pod>/delete/", views.environment_delete_pod, name="environment-delete-pod"),
    path(f"{_BASE}pods/<str:pod>/logs/", views.environment_logs_download, name="environment-logs-download"),
    path(f"{_BASE}config/", views.environment_config, name="environment-config"),
    path(f"{_BASE}config/changes/", views.config_change_list, name="environment-config-changes"),
    path(f"{_BASE}config/changes/<int:pk>/", views.config_change_detail, name="environment-config-change"),
]
