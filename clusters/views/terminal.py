"""Pages of the web terminal: the terminal itself, the session list and replay (with its commands),
the ops command search and the refused command patterns."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_safe

from clusters.models import PatternKind, RefusedCommandPattern
from clusters.selectors import terminal as selectors
from clusters.selectors.environments import environment_get
from clusters.services import terminal, terminal_commands
from integrations.errors import IntegrationError
from opsportal.http import client_address, page_of
from projects.access import require_ops
from projects.choices import Environment


class SessionFilterForm(forms.Form):
    project = forms.CharField(label=gettext_lazy("Project"), required=False, max_length=63)
    user = forms.CharField(label=gettext_lazy("User"), required=False, max_length=150)


class CommandSearchForm(forms.Form):
    project = forms.CharField(label=gettext_lazy("Project"), required=False, max_length=63)
    environment = forms.ChoiceField(
        label=gettext_lazy("Environment"), required=False, choices=[("", "—"), *Environment.choices]
    )
    user = forms.CharField(label=gettext_lazy("User"), required=False, max_length=150)
    q = forms.CharField(label=gettext_lazy("Command contains"), required=False, max_length=200)
    since = forms.DateTimeField(label=gettext_lazy("From"), required=False)
    until = forms.DateTimeField(label=gettext_lazy("Until"), required=False)


class PatternForm(forms.Form):
    environment = forms.ChoiceField(label=gettext_lazy("Environment"), choices=Environment.choices)
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=PatternKind.choices)
    pattern = forms.CharField(label=gettext_lazy("Pattern"), max_length=500)
    description = forms.CharField(label=gettext_lazy("Description"), required=False, max_length=200)


@login_required
@require_safe
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
@require_safe
def session_list(request):
    form = SessionFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    sessions = selectors.sessions_readable(
        request.user, project=filters.get("project", ""), username=filters.get("user", "")
    )
    page, query = page_of(request, sessions)
    return render(request, "clusters/terminal/sessions.html", {"form": form, "page": page, "query": query})


@login_required
@require_safe
def session_replay(request, pk: int):
    session = selectors.session_get(request.user, session_id=pk)
    return render(
        request,
        "clusters/terminal/replay.html",
        {"session": session, "commands": selectors.session_commands(session)[:1000]},
    )


@login_required
@require_safe
def command_search(request):
    require_ops(request.user)
    form = CommandSearchForm(request.GET or None)
    commands = selectors.commands_search(**(form.cleaned_data if form.is_valid() else {}))
    page, query = page_of(request, commands)
    status = 400 if form.is_bound and not form.is_valid() else 200
    return render(
        request,
        "clusters/terminal/commands.html",
        {"form": form, "page": page, "query": query},
        status=status,
    )


@login_required
def refused_patterns(request):
    require_ops(request.user)
    form = PatternForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            terminal_commands.pattern_create(
                actor=request.user, remote_addr=client_address(request), **form.cleaned_data
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(request, _("Pattern added."))
            return redirect("terminal-refused-patterns")
    patterns = RefusedCommandPattern.objects.select_related("created_by")
    status = 400 if form.is_bound else 200
    return render(
        request, "clusters/terminal/patterns.html", {"form": form, "patterns": patterns}, status=status
    )


@login_required
def refused_pattern_delete(request, pk: int):
    require_ops(request.user)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not RefusedCommandPattern.objects.filter(pk=pk).exists():
        raise Http404("No such pattern.")
    terminal_commands.pattern_delete(actor=request.user, pattern_id=pk, remote_addr=client_address(request))
    messages.success(request, _("Pattern removed."))
    return redirect("terminal-refused-patterns")
