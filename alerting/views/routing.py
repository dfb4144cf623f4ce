"""Pages: a project's alert policies, and the signed-in person's notification preferences."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from alerting.forms.routing import PolicyForm, PreferencesForm
from alerting.models import Policy
from alerting.services import routing
from opsportal.http import client_address
from projects.access import Action, can, get_project
from projects.models import UserProfile


def _add_errors(form, exc: ValidationError) -> None:
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def _policy_values(policy: Policy) -> dict:
    return {
        "environment": policy.environment,
        "severity": policy.severity,
        "channels": list(policy.channels.all()),
        "repeat_interval_minutes": policy.repeat_interval_minutes,
        "quiet_start": policy.quiet_start,
        "quiet_end": policy.quiet_end,
        "send_resolved": policy.send_resolved,
        "mention": policy.mention,
        "on_call": policy.on_call,
    }


@login_required
def policy_list(request, name: str):
    """Every member reads the policies; the owner and ops add one here."""
    action = Action.EDIT_PROJECT if request.method == "POST" else Action.VIEW
    project = get_project(request.user, name=name, action=action)
    form = PolicyForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        try:
            routing.policy_create(
                actor=request.user, project=project, remote_addr=client_address(request), **form.cleaned_data
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("Policy added."))
            return redirect("alerting:policy-list", name=project.name)
    policies = Policy.objects.filter(project=project).select_related("on_call").prefetch_related("channels")
    context = {
        "project": project,
        "policies": policies,
        "form": form,
        "can_edit": can(request.user, Action.EDIT_PROJECT, project),
    }
    return render(request, "alerting/policies.html", context, status=400 if form.errors else 200)


@login_required
def policy_edit(request, name: str, pk: int):
    project = get_project(request.user, name=name, action=Action.EDIT_PROJECT)
    policy = Policy.objects.filter(project=project, pk=pk).first()
    if policy is None:
        raise Http404("No such policy.")
    form = PolicyForm(request.POST or None, project=project, initial=_policy_values(policy))
    if request.method == "POST" and form.is_valid():
        values = dict(form.cleaned_data)
        channels = values.pop("channels")
        try:
            routing.policy_update(
                actor=request.user,
                policy_id=policy.pk,
                channels=list(channels),
                remote_addr=client_address(request),
                **values,
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("Policy saved."))
            return redirect("alerting:policy-list", name=project.name)
    return render(
        request,
        "alerting/policy_edit.html",
        {"project": project, "policy": policy, "form": form},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def policy_delete(request, name: str, pk: int):
    project = get_project(request.user, name=name, action=Action.EDIT_PROJECT)
    policy = Policy.objects.filter(project=project, pk=pk).first()
    if policy is None:
        raise Http404("No such policy.")
    routing.policy_delete(actor=request.user, policy_id=policy.pk, remote_addr=client_address(request))
    messages.success(request, _("Policy deleted."))
    return redirect("alerting:policy-list", name=project.name)


@login_required
def notification_preferences(request):
    current = routing.preferences_of(request.user)
    mobile = UserProfile.objects.filter(user=request.user).values_list("mobile", flat=True).first() or ""
    initial = {"mobile": mobile, **{f"kind_{kind}": method for kind, method in current.items()}}
    form = PreferencesForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            routing.notification_preferences_set(
                actor=request.user,
                methods=form.methods(),
                mobile=form.cleaned_data["mobile"],
                remote_addr=client_address(request),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("Notification preferences saved."))
            return redirect("alerting:notification-preferences")
    return render(request, "alerting/preferences.html", {"form": form}, status=400 if form.errors else 200)
