from django.urls import path

from observability import api

urlpatterns = [path("audit-events/", api.AuditEventListView.as_view(), name="api-audit-list")]
