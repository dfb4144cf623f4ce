from django.contrib import admin

from projects.models import Project, ProjectMember, UserProfile


class MemberInline(admin.TabularInline):
    model = ProjectMember
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "language", "owner", "created_at"]
    search_fields = ["name", "description"]
    inlines = [MemberInline]


admin.site.register(UserProfile)
