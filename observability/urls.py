from django.urls import path

from observability import views

urlpatterns = [path("", views.audit_list, name="audit-list")]
