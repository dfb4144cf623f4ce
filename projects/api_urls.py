from django.urls import path

from projects import api

urlpatterns = [
    path("terminal-grants/", api.TerminalGrantListView.as_view(), name="api-terminal-grant-list"),
    path(
        "terminal-grants/<int:pk>/revoke/",
        api.TerminalGrantRevokeView.as_view(),
        name="api-terminal-grant-revoke",
    ),
    path("projects/", api.ProjectListView.as_view(), name="api-project-list"),
    path("projects/<str:name>/", api.ProjectDetailView.as_view(), name="api-project-detail"),
    path("projects/<str:name>/settings/", api.ProjectSettingsView.as_view(), name="api-project-settings"),
    path("projects/<str:name>/members/", api.MemberListView.as_view(), name="api-project-members"),
    path(
        "projects/<str:name>/members/<str:username>/",
        api.MemberDetailView.as_view(),
        name="api-project-member",
    ),
]
