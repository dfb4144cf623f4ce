"""Pages of the web terminal: the terminal itself, the session audit list and the replay."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from clusters.selectors.environments import environment_get
from clusters.services import terminal
from integrations.errors import IntegrationError


class SessionFilterForm(forms.Form):
    project = forms.CharField(label=_("Project"), required=False, max_length=63)
    user = forms.CharField(label=_("User"), required=False, max_length=150)


@login_required
def terminal_page(request, name: str, environment: str):
    # 404 for a non-member or an environment that is not provisioned, 403 without the terminal right.
    ref = environment_get(
        user=request.user, name=name, environment=environment, action=terminal.terminal_action(environment)
    )
    pods, error = [], ""
    try:
        pods = terminal.project_pods(ref)
    except IntegrationError as exc:
        error = str(exc)
    pod = request.GET.get("pod", "")
    container = request.GET.get("container", "")
    return render(
        request,
        "clusters/terminal/terminal.html",
        {
            "env": ref.environment,
            "project": ref.project,
            "pods": pods,
            "pod": pod,
            "container": container,
            "error": error,
            "ws_path": f"/ws/terminal/{ref.project.name}/{environment}/",
        },
    )


@login_required
def session_list(request):
    form = SessionFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    sessions = terminal.sessions_visible_to(
        request.user, project=filters.get("project", ""), username=filters.get("user", "")
    )
    page = Paginator(sessions, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "clusters/terminal/sessions.html",
        {"form": form, "page": page, "query": query.urlencode()},
    )


@login_required
def session_replay(request, pk: int):
    session = terminal.session_for(request.user, session_id=pk)
    return render(request, "clusters/terminal/replay.html", {"session": session})
