from django.urls import path

from projects import views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("new/", views.project_create, name="project-create"),
    path("<str:name>/", views.project_detail, name="project-detail"),
    path("<str:name>/settings/", views.project_settings, name="project-settings"),
    path("<str:name>/members/", views.member_set, name="member-set"),
    path("<str:name>/members/<str:username>/remove/", views.member_remove, name="member-remove"),
]
