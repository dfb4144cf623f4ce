from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

# Imported for its effect: it replaces the user, group and token admins before admin.site.urls is read.
import opsportal.admin_auth  # noqa: F401
from opsportal import api, dora_api, security, tokens, views
from projects import views as project_views

api_patterns = [
    path("me/", api.MeView.as_view(), name="api-me"),
    path("worker-ping/", api.WorkerPingView.as_view(), name="api-worker-ping"),
    path("token/", tokens.ObtainTokenView.as_view(), name="api-token"),
    path("projects/<str:name>/cockpit/", api.CockpitView.as_view(), name="api-project-cockpit"),
    path("projects/<str:name>/dora/", dora_api.ProjectDoraView.as_view(), name="api-project-dora"),
    path("dora/", dora_api.DoraOverviewView.as_view(), name="api-dora"),
    path("", include("projects.api_urls")),
    path("", include("observability.api_urls")),
    path("", include("clusters.api.urls")),
    path("", include("configs.api_urls")),
    path("", include("deploys.api.urls")),
    path("", include("alerting.api_urls")),
]

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("worker-ping/", views.worker_ping, name="worker-ping"),
    path("language/", views.set_language, name="set-language"),
    path("metrics", views.metrics, name="metrics"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("projects/<str:name>/cockpit/", views.project_cockpit, name="project-cockpit"),
    path(
        "projects/<str:name>/cockpit/<str:environment>/live/",
        views.project_cockpit_live,
        name="project-cockpit-live",
    ),
    path(
        "projects/<str:name>/cockpit/<str:environment>/traffic/",
        views.project_cockpit_traffic,
        name="project-cockpit-traffic",
    ),
    path("projects/<str:name>/dora/", views.project_dora, name="project-dora"),
    path("dora/", views.dora_overview, name="dora-overview"),
    path("projects/", include("projects.urls")),
    path("terminal-grants/", project_views.terminal_grant_list, name="terminal-grant-list"),
    path(
        "terminal-grants/<int:pk>/revoke/", project_views.terminal_grant_revoke, name="terminal-grant-revoke"
    ),
    path("audit/", include("observability.urls")),
    path("", include("clusters.urls")),
    path("", include("configs.urls")),
    path("", include("deploys.urls")),
    path("", include("alerting.urls")),
    path("admin/", admin.site.urls),
    path("api/", include(api_patterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        # The split view serves its setup script as a file: no inline script under the CSP.
        security.api_docs_page(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
]

handler400 = "opsportal.views.bad_request"
handler403 = "opsportal.views.permission_denied"
handler404 = "opsportal.views.page_not_found"
handler500 = "opsportal.views.server_error"
