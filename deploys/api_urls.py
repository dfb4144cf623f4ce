from django.urls import path

from deploys import api

ticket = "projects/<str:name>/tickets/<int:pk>/"
urlpatterns = [
    path("tickets/", api.TicketQueueView.as_view(), name="api-ticket-queue"),
    path("projects/<str:name>/tickets/", api.ProjectTicketsView.as_view(), name="api-project-tickets"),
    path(ticket, api.TicketDetailView.as_view(), name="api-ticket-detail"),
    path(ticket + "submit/", api.TicketSubmitView.as_view(), name="api-ticket-submit"),
    path(ticket + "withdraw/", api.TicketWithdrawView.as_view(), name="api-ticket-withdraw"),
    path(ticket + "approve/", api.TicketApproveView.as_view(), name="api-ticket-approve"),
    path(ticket + "reject/", api.TicketRejectView.as_view(), name="api-ticket-reject"),
    path(ticket + "preview/", api.TicketPreviewView.as_view(), name="api-ticket-preview"),
]
