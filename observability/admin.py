from django.contrib import admin

from observability.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_name", "verb", "target_type", "target_id", "project", "remote_addr"]
    list_filter = ["verb", "target_type"]
    search_fields = ["actor_name", "target_repr", "verb"]

    # Append-only: readable by superusers, never changed or removed from here.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
