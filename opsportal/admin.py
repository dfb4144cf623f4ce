from django.contrib import admin


class ReadOnlyAdminMixin:
    """For models whose writes go through services (validated, locked and audited): the admin only shows
    them. Superusers keep read access; changes are made on the portal's pages or through its API."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyModelAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    pass
