from django.urls import path

from deploys.views import log_pipelines as pipeline_views
from deploys.views import releases as release_views
from deploys.views import tickets as views

urlpatterns = [
    path("tickets/", views.ticket_queue, name="ticket-queue"),
    path("projects/<str:name>/tickets/new/", views.ticket_new, name="ticket-new"),
    path("projects/<str:name>/tickets/<int:pk>/", views.ticket_detail, name="ticket-detail"),
    path("projects/<str:name>/tickets/<int:pk>/edit/", views.ticket_edit, name="ticket-edit"),
    path("projects/<str:name>/tickets/<int:pk>/preview/", views.ticket_preview, name="ticket-preview"),
    path("releases/", release_views.release_queue, name="release-queue"),
    path("projects/<str:name>/releases/", release_views.release_list, name="release-list"),
    path("projects/<str:name>/releases/<int:pk>/", release_views.release_detail, name="release-detail"),
    path(
        "projects/<str:name>/releases/<int:pk>/<str:action>/",
        release_views.release_action,
        name="release-action",
    ),
    path("projects/<str:name>/rollback/<str:environment>/", release_views.rollback, name="rollback"),
    path("recipes/", release_views.recipe_list, name="recipe-list"),
    path("log-pipelines/", pipeline_views.pipeline_list, name="log-pipeline-list"),
    path("log-pipelines/<int:pk>/", pipeline_views.pipeline_page, name="log-pipeline"),
    path("log-pipelines/<int:pk>/status/", pipeline_views.pipeline_status, name="log-pipeline-status"),
    path("log-pipelines/<int:pk>/deploy/", pipeline_views.pipeline_deploy, name="log-pipeline-deploy"),
    path("recipes/<str:language>/", release_views.recipe_edit, name="recipe-edit"),
    path(
        "projects/<str:name>/tickets/<int:pk>/<str:action>/",
        views.ticket_action,
        name="ticket-action",
    ),
]
