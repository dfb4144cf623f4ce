from django.urls import path

from clusters.views import clusters as views

urlpatterns = [
    path("", views.cluster_list, name="cluster-list"),
    path("new/", views.cluster_create, name="cluster-create"),
    path("<int:pk>/", views.cluster_edit, name="cluster-edit"),
    path("<int:pk>/test-connection/", views.cluster_test_connection, name="cluster-test-connection"),
]
