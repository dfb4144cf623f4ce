from django.contrib import admin

from observability.models import AuditEvent
from opsportal.admin import ReadOnlyModelAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    """Append-only: readable by superusers, never changed or removed from here."""

    list_display = [
        "created_at",
        "actor_name",
        "verb",
        "target_type",
        "target_id",
        "project_name",
        "remote_addr",
    ]
    list_filter = ["verb", "target_type"]
    search_fields = ["actor_name", "project_name", "target_repr", "verb"]
