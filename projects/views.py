from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from observability.events import current_seq, project_stream
from observability.selectors import audit_events_for
from opsportal.forms import add_service_errors
from opsportal.http import client_address
from projects import selectors, services
from projects.access import Action, allowed_actions, get_project, is_ops, require_ops
from projects.forms import MemberForm, ProjectForm, ProjectSettingsForm, TerminalGrantForm

TABS = ("overview", "environments", "members", "tickets", "audit")


@login_required
@require_safe
def project_list(request):
    scope = request.GET.get("scope", "mine")
    query = request.GET.get("q", "").strip()[:100]
    projects = selectors.project_list(user=request.user, query=query, mine=scope != "all")
    page = Paginator(projects, 25).get_page(request.GET.get("page"))
    template = "projects/_list_table.html" if request.htmx else "projects/list.html"
    return render(
        request, template, {"page": page, "scope": scope, "query": query, "can_create": is_ops(request.user)}
    )


@login_required
def project_create(request):
    if not is_ops(request.user):
        raise PermissionDenied(_("Only ops create projects."))
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            project = services.project_create(
                actor=request.user, remote_addr=client_address(request), **form.cleaned_data
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(request, _("Project %(name)s created.") % {"name": project.name})
            return redirect("project-detail", name=project.name)
    return render(request, "projects/create.html", {"form": form})


def _detail_context(request, project, tab: str, member_form: MemberForm | None = None) -> dict:
    actions = allowed_actions(request.user, project)
    context = {
        "project": project,
        "tab": tab,
        "tabs": TABS,
        "actions": actions,
        "can_file": Action.FILE_TICKET in actions,
        "can_manage_members": Action.MANAGE_MEMBERS in actions,
        "can_edit_settings": Action.EDIT_PROJECT in actions,
        "members": selectors.member_list(project=project),
        "member_form": member_form or MemberForm(),
        "stream": project_stream(project.pk),
        "stream_seq": current_seq(project_stream(project.pk)),
    }
    if tab == "audit":
        context["events"] = audit_events_for(user=request.user, project=project.name)[:100]
    elif tab == "tickets":
        # The reverse relations of the apps above: projects imports none of them.
        context["tickets"] = project.tickets.select_related("created_by", "reviewed_by", "cluster")[:100]
    elif tab == "environments":
        context["environments"] = list(project.environments.select_related("cluster"))
    return context


@login_required
@require_safe
def project_detail(request, name: str):
    project = get_project(request.user, name=name, action=Action.VIEW)
    tab = request.GET.get("tab", "overview")
    if tab not in TABS:
        tab = "overview"
    return render(request, "projects/detail.html", _detail_context(request, project, tab))


@login_required
def project_settings(request, name: str):
    project = get_project(request.user, name=name, action=Action.EDIT_PROJECT)
    initial = {field: getattr(project, field) for field in services.SETTINGS_FIELDS}
    form = ProjectSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        services.project_update_settings(
            actor=request.user, project=project, remote_addr=client_address(request), **form.cleaned_data
        )
        messages.success(request, _("Settings saved."))
        return redirect("project-detail", name=project.name)
    return render(request, "projects/settings.html", {"project": project, "form": form})


@login_required
@require_POST
def member_set(request, name: str):
    project = get_project(request.user, name=name, action=Action.MANAGE_MEMBERS)
    form = MemberForm(request.POST)
    if form.is_valid():
        try:
            services.member_set(
                actor=request.user,
                project=project,
                user=form.cleaned_data["username"],
                role=form.cleaned_data["role"],
                # Unchecked is "leave as it is": ops revoke on the terminal grants page.
                prod_terminal=True if form.cleaned_data["prod_terminal"] else None,
                remote_addr=client_address(request),
            )
        except PermissionDenied as exc:
            form.add_error("prod_terminal", str(exc))
            context = _detail_context(request, project, "members", member_form=form)
            return render(request, "projects/detail.html", context, status=403)
        messages.success(request, _("Membership saved."))
    else:
        messages.error(request, "; ".join(e for errors in form.errors.values() for e in errors))
    return redirect(f"/projects/{project.name}/?tab=members")


@login_required
@require_POST
def member_remove(request, name: str, username: str):
    project = get_project(request.user, name=name, action=Action.MANAGE_MEMBERS)
    member = project.members.select_related("user").filter(user__username=username).first()
    if member is not None:
        try:
            services.member_remove(
                actor=request.user,
                project=project,
                user=member.user,
                remote_addr=client_address(request),
            )
        except ValidationError as exc:
            messages.error(request, "; ".join(exc.messages))
    return redirect(f"/projects/{project.name}/?tab=members")


@login_required
def terminal_grant_list(request):
    """Production terminal grants, for ops: the active ones, the lately ended ones, and a grant form."""
    require_ops(request.user)
    form = TerminalGrantForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            grant = services.terminal_grant_create(
                actor=request.user,
                project=form.cleaned_data["project"],
                user=form.cleaned_data["username"],
                hours=form.cleaned_data["hours"],
                remote_addr=client_address(request),
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            messages.success(
                request,
                _("%(user)s may open production terminals of %(project)s until %(expires)s.")
                % {
                    "user": grant.user.username,
                    "project": grant.project.name,
                    "expires": date_format(timezone.localtime(grant.expires_at), "DATETIME_FORMAT"),
                },
            )
            return redirect("terminal-grant-list")
    active, ended = selectors.terminal_grant_list(user=request.user)
    status = 400 if form.is_bound else 200
    return render(
        request,
        "projects/terminal_grants.html",
        {"form": form, "active": active, "ended": ended},
        status=status,
    )


@login_required
@require_POST
def terminal_grant_revoke(request, pk: int):
    grant = selectors.terminal_grant_get(user=request.user, pk=pk)
    services.terminal_grant_revoke(actor=request.user, grant=grant, remote_addr=client_address(request))
    messages.success(
        request,
        _("Production terminals of %(project)s revoked for %(user)s.")
        % {"project": grant.project.name, "user": grant.user.username},
    )
    return redirect("terminal-grant-list")
