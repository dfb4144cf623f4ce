from django.urls import path

from clusters.views import terminal as terminal_views

urlpatterns = [
    path(
        "projects/<str:name>/env/<str:environment>/terminal/",
        terminal_views.terminal_page,
        name="terminal",
    ),
    path("terminal-sessions/", terminal_views.session_list, name="terminal-session-list"),
    path("terminal-sessions/<int:pk>/", terminal_views.session_replay, name="terminal-session-replay"),
]
