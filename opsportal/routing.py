from django.urls import path

from observability.consumers import LiveEventsConsumer

websocket_urlpatterns = [
    path("ws/events/", LiveEventsConsumer.as_asgi()),
]
