from django.contrib import admin

from clusters.models import Cluster


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    """Read-only: changes go through the portal's pages so they are validated and audited."""

    list_display = ["name", "environment", "api_url", "auth_type", "last_check_ok", "server_version"]
    list_filter = ["environment", "auth_type"]
    exclude = ["credential"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
