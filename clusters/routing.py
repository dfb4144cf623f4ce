from django.urls import path

from clusters.consumers_env import EnvironmentConsumer
from clusters.consumers_terminal import TerminalConsumer

websocket_urlpatterns = [
    path("ws/environments/<str:name>/<str:environment>/", EnvironmentConsumer.as_asgi()),
    path("ws/terminal/<str:name>/<str:environment>/", TerminalConsumer.as_asgi()),
]
