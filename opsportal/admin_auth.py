"""The admin of what the portal has no pages for: users, groups and API tokens. Portal-wide wiring (it
audits through observability and revokes through opsportal.tokens); opsportal.urls imports it, which
replaces the stock admins before the admin's URLs are built."""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.db import transaction
from rest_framework.authtoken.admin import TokenAdmin as DRFTokenAdmin
from rest_framework.authtoken.models import TokenProxy

from observability.services import audit_record, changes_between
from opsportal.admin import ReadOnlyAdminMixin
from opsportal.http import client_address
from opsportal.tokens import token_revoke


class AuditedAdminMixin:
    """For models the admin still writes (users, groups): every addition, change and deletion is
    recorded as an AuditEvent in the admin's own transaction, with the fields that changed. Django's
    LogEntry alone is not enough: it records no before/after values and the portal does not read it."""

    audit_prefix = ""

    def audit_snapshot(self, obj) -> dict:
        raise NotImplementedError

    def _audit(self, request, obj, verb: str, changes: dict) -> None:
        audit_record(
            actor=request.user,
            verb=f"{self.audit_prefix}.{verb}",
            target=obj,
            changes=changes,
            remote_addr=client_address(request),
        )

    def save_model(self, request, obj, form, change):
        if change:
            # Read before the save: the form has already put the new values on obj.
            obj._audit_before = self.audit_snapshot(type(obj)._default_manager.get(pk=obj.pk))
        super().save_model(request, obj, form, change)

    # Django calls these after save_model and save_related, so many-to-many fields are final here.
    def log_addition(self, request, obj, message):
        self._audit(request, obj, "create", changes_between({}, self.audit_snapshot(obj)))
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        before = getattr(obj, "_audit_before", None)
        if before is None:
            # A change made outside the change form (the password form): name the fields, never values.
            fields = sorted({f for entry in message for f in entry.get("changed", {}).get("fields", [])})
            changes = {"changed_fields": fields}
        else:
            changes = changes_between(before, self.audit_snapshot(obj))
        self._audit(request, obj, "change", changes)
        return super().log_change(request, obj, message)

    def delete_model(self, request, obj):
        with transaction.atomic():
            self._audit(request, obj, "delete", self.audit_snapshot(obj))
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        # The bulk "delete selected" action runs outside the admin's atomic views.
        with transaction.atomic():
            for obj in queryset:
                self._audit(request, obj, "delete", self.audit_snapshot(obj))
            super().delete_queryset(request, queryset)


def _names(related) -> list[str]:
    return sorted(str(item) for item in related.all())


class AuditedUserAdmin(AuditedAdminMixin, UserAdmin):
    """Users are managed here (the portal has no user pages); who may do what — staff, superuser,
    groups such as ops, permissions — is audited with its old and new values."""

    audit_prefix = "user"

    def audit_snapshot(self, obj) -> dict:
        return {
            "username": obj.username,
            "is_active": obj.is_active,
            "is_staff": obj.is_staff,
            "is_superuser": obj.is_superuser,
            "groups": _names(obj.groups),
            "user_permissions": sorted(p.codename for p in obj.user_permissions.all()),
        }

    def user_change_password(self, request, id, form_url=""):
        # The password form saves and logs outside the admin's atomic views; keep both in one transaction.
        with transaction.atomic():
            return super().user_change_password(request, id, form_url)


class AuditedGroupAdmin(AuditedAdminMixin, GroupAdmin):
    audit_prefix = "group"

    def audit_snapshot(self, obj) -> dict:
        return {"name": obj.name, "permissions": sorted(p.codename for p in obj.permissions.all())}


class _Named:
    """What a template needs of an object (its pk for links, its name) without its own __str__."""

    def __init__(self, *, pk, name: str):
        self.pk, self.name = pk, name

    def __str__(self) -> str:
        return self.name


class TokenAdmin(ReadOnlyAdminMixin, DRFTokenAdmin):
    """Tokens are issued by /api/token/ (audited, to their own user). Here superusers see who has one
    (never the key) and may revoke it, which is audited too."""

    list_display = ("user", "created")
    list_display_links = None

    def has_view_permission(self, request, obj=None):
        # A token's page is titled with its key (Token.__str__); only the list, which never shows keys.
        return obj is None and super().has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    # Token.__str__ is the key: every place the admin would print the object names its user instead.
    def render_delete_form(self, request, context):
        token = context["object"]
        owner = token.user.get_username()
        context.update(object=_Named(pk=token.user.pk, name=owner), deleted_objects=[owner])
        return super().render_delete_form(request, context)

    def response_delete(self, request, obj_display, obj_id):
        return super().response_delete(request, str(self.opts.verbose_name), obj_id)

    def log_deletions(self, request, queryset):
        # Django's LogEntry would store the key as the object's name; the AuditEvent records the revocation.
        return []

    def delete_model(self, request, obj):
        token_revoke(actor=request.user, user=obj.user, remote_addr=client_address(request))

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for token in queryset:
                token_revoke(actor=request.user, user=token.user, remote_addr=client_address(request))


# In place of the stock admins, whose writes to rights, groups and tokens were not audited.
for model, model_admin in [(User, AuditedUserAdmin), (Group, AuditedGroupAdmin), (TokenProxy, TokenAdmin)]:
    admin.site.unregister(model)
    admin.site.register(model, model_admin)
