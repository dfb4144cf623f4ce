from django.urls import path

from clusters.api import terminal as terminal_api

urlpatterns = [
    path(
        "terminal-sessions/", terminal_api.TerminalSessionListView.as_view(), name="api-terminal-session-list"
    ),
    path(
        "terminal-sessions/<int:pk>/",
        terminal_api.TerminalSessionDetailView.as_view(),
        name="api-terminal-session-detail",
    ),
    path(
        "terminal-sessions/<int:pk>/recording",
        terminal_api.TerminalRecordingView.as_view(),
        name="api-terminal-session-recording",
    ),
]
