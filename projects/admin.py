from django.contrib import admin
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import TokenProxy

from opsportal.admin import (
    AuditedGroupAdmin,
    AuditedUserAdmin,
    ReadOnlyAdminMixin,
    ReadOnlyModelAdmin,
    TokenAdmin,
)
from projects.models import Project, ProjectMember, UserProfile


class MemberInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ProjectMember
    extra = 0


# Read-only: projects, members, release settings and languages change through projects.services, which
# checks the actor's rights and records every change in the audit log.
@admin.register(Project)
class ProjectAdmin(ReadOnlyModelAdmin):
    list_display = ["name", "language", "owner", "require_tester_confirmation", "auto_rollback", "created_at"]
    search_fields = ["name", "description"]
    inlines = [MemberInline]


@admin.register(UserProfile)
class UserProfileAdmin(ReadOnlyModelAdmin):
    list_display = ["user", "language"]


# Registered here (this app is autodiscovered after auth and authtoken) in place of the stock admins,
# whose writes to rights, groups and tokens were not audited.
for model, model_admin in [(User, AuditedUserAdmin), (Group, AuditedGroupAdmin), (TokenProxy, TokenAdmin)]:
    admin.site.unregister(model)
    admin.site.register(model, model_admin)
