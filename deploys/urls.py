from django.urls import path

from deploys import views

urlpatterns = [
    path("tickets/", views.ticket_queue, name="ticket-queue"),
    path("projects/<str:name>/tickets/new/", views.ticket_new, name="ticket-new"),
    path("projects/<str:name>/tickets/<int:pk>/", views.ticket_detail, name="ticket-detail"),
    path("projects/<str:name>/tickets/<int:pk>/edit/", views.ticket_edit, name="ticket-edit"),
    path("projects/<str:name>/tickets/<int:pk>/preview/", views.ticket_preview, name="ticket-preview"),
    path(
        "projects/<str:name>/tickets/<int:pk>/<str:action>/",
        views.ticket_action,
        name="ticket-action",
    ),
]
