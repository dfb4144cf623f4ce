from django.urls import path

from deploys.api import log_pipelines as pipeline_api
from deploys.api import releases as release_api
from deploys.api import tickets as api

ticket = "projects/<str:name>/tickets/<int:pk>/"
release = "projects/<str:name>/releases/<int:pk>/"
urlpatterns = [
    path("tickets/", api.TicketQueueView.as_view(), name="api-ticket-queue"),
    path("projects/<str:name>/tickets/", api.ProjectTicketsView.as_view(), name="api-project-tickets"),
    path(ticket, api.TicketDetailView.as_view(), name="api-ticket-detail"),
    path(ticket + "submit/", api.TicketSubmitView.as_view(), name="api-ticket-submit"),
    path(ticket + "withdraw/", api.TicketWithdrawView.as_view(), name="api-ticket-withdraw"),
    path(ticket + "approve/", api.TicketApproveView.as_view(), name="api-ticket-approve"),
    path(ticket + "reject/", api.TicketRejectView.as_view(), name="api-ticket-reject"),
    path(ticket + "preview/", api.TicketPreviewView.as_view(), name="api-ticket-preview"),
    path("releases/", release_api.ReleaseQueueView.as_view(), name="api-release-queue"),
    path(
        "projects/<str:name>/releases/",
        release_api.ProjectReleasesView.as_view(),
        name="api-project-releases",
    ),
    path(release, release_api.ReleaseDetailView.as_view(), name="api-release-detail"),
    path(release + "console/", release_api.ReleaseConsoleView.as_view(), name="api-release-console"),
    path(release + "confirm/", release_api.ReleaseConfirmView.as_view(), name="api-release-confirm"),
    path(release + "promote/", release_api.ReleasePromoteView.as_view(), name="api-release-promote"),
    path(release + "cancel/", release_api.ReleaseCancelView.as_view(), name="api-release-cancel"),
    path(
        "projects/<str:name>/deployments/",
        release_api.DeploymentHistoryView.as_view(),
        name="api-deployments",
    ),
    path("projects/<str:name>/rollback/", release_api.RollbackView.as_view(), name="api-rollback"),
    path("recipes/<str:language>/", release_api.RecipeView.as_view(), name="api-recipe"),
    path("log-pipelines/", pipeline_api.PipelineListView.as_view(), name="api-log-pipelines"),
    path("log-pipelines/<int:pk>/", pipeline_api.PipelineDetailView.as_view(), name="api-log-pipeline"),
    path(
        "log-pipelines/<int:pk>/deploy/",
        pipeline_api.PipelineDeployView.as_view(),
        name="api-log-pipeline-deploy",
    ),
    path(
        "log-pipelines/<int:pk>/status/",
        pipeline_api.PipelineStatusView.as_view(),
        name="api-log-pipeline-status",
    ),
    path(
        "log-pipelines/<int:pk>/rollouts/<int:rollout>/",
        pipeline_api.RolloutDetailView.as_view(),
        name="api-log-proxy-rollout",
    ),
]
