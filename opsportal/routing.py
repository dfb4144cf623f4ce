from django.urls import path

from clusters.routing import websocket_urlpatterns as cluster_websockets
from observability.consumers import LiveEventsConsumer

websocket_urlpatterns = [
    path("ws/events/", LiveEventsConsumer.as_asgi()),
    *cluster_websockets,
]
