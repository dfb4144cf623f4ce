from django.urls import path

from projects import views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("<str:name>/", views.project_detail, name="project-detail"),
]
