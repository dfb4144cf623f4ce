from django.contrib import admin

from opsportal.admin import ReadOnlyAdminMixin, ReadOnlyModelAdmin
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
