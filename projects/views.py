from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from observability.events import current_seq, project_stream
from observability.selectors import audit_events_for
from projects import selectors
from projects.access import Action, allowed_actions, get_project

TABS = ("overview", "members", "audit")


@login_required
def project_list(request):
    scope = request.GET.get("scope", "mine")
    query = request.GET.get("q", "").strip()[:100]
    projects = selectors.project_list(user=request.user, query=query, mine=scope != "all")
    page = Paginator(projects, 25).get_page(request.GET.get("page"))
    template = "projects/_list_table.html" if request.htmx else "projects/list.html"
    return render(request, template, {"page": page, "scope": scope, "query": query})


@login_required
def project_detail(request, name: str):
    project = get_project(request.user, name=name, action=Action.VIEW)
    tab = request.GET.get("tab", "overview")
    if tab not in TABS:
        tab = "overview"
    context = {
        "project": project,
        "tab": tab,
        "tabs": TABS,
        "actions": allowed_actions(request.user, project),
        "members": project.members.select_related("user"),
        "stream": project_stream(project.pk),
        "stream_seq": current_seq(project_stream(project.pk)),
    }
    if tab == "audit":
        context["events"] = audit_events_for(user=request.user, project=project.name)[:100]
    return render(request, "projects/detail.html", context)
