from django.contrib import admin

from clusters.models import Cluster
from opsportal.admin import ReadOnlyModelAdmin


@admin.register(Cluster)
class ClusterAdmin(ReadOnlyModelAdmin):
    """Read-only: changes go through the portal's pages so they are validated and audited."""

    list_display = ["name", "environment", "api_url", "auth_type", "last_check_ok", "server_version"]
    list_filter = ["environment", "auth_type"]
    exclude = ["credential"]
