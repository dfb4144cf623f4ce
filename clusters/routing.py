from django.urls import path

from clusters.consumers.environment import EnvironmentConsumer
from clusters.consumers.pipeline import PipelineTailConsumer
from clusters.consumers.terminal import TerminalConsumer

websocket_urlpatterns = [
    path("ws/environments/<str:name>/<str:environment>/", EnvironmentConsumer.as_asgi()),
    path("ws/pipeline/<str:name>/<str:environment>/", PipelineTailConsumer.as_asgi()),
    path("ws/terminal/<str:name>/<str:environment>/", TerminalConsumer.as_asgi()),
]
