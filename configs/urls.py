"""Pages: a project's Apollo configuration."""

from django.urls import path

from configs import views

app_name = "configs"
NAMESPACE = "projects/<str:name>/apollo/<str:environment>/<str:namespace>/"
urlpatterns: list = [
    path("projects/<str:name>/apollo/", views.apollo_index, name="apollo"),
    path("projects/<str:name>/apollo/settings/", views.apollo_settings, name="settings"),
    path(NAMESPACE, views.namespace_page, name="namespace"),
    path(NAMESPACE + "items/new/", views.item_create, name="item-create"),
    path(NAMESPACE + "items/edit/", views.item_edit, name="item-edit"),
    path(NAMESPACE + "items/delete/", views.item_delete, name="item-delete"),
    path(NAMESPACE + "release/", views.release_create, name="release"),
    path(NAMESPACE + "rollback/", views.release_rollback, name="rollback"),
]
