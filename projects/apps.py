from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ProjectsConfig(AppConfig):
    name = "projects"
    verbose_name = _("Projects")

    def ready(self):
        from observability import events, selectors
        from projects.access import Action, can, is_ops, visible_projects
        from projects.models import Project

        def may_view_project(user, project_id: int) -> bool:
            project = Project.objects.filter(pk=project_id).first()
            return project is not None and can(user, Action.VIEW, project)

        events.register_stream_kind("project", may_view_project)
        selectors.register_project_scope(lambda user: None if is_ops(user) else visible_projects(user))
