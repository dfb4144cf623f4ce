"""The project alerts page: what fires now, the history, the project's silences in Alertmanager, and
the buttons to acknowledge, silence and expire (owners and ops). Each action redirects back to the page;
with HTMX the page's body is swapped in place."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from alerting import selectors
from alerting.choices import AlertStatus
from alerting.services import alerts as services
from integrations.errors import IntegrationError
from opsportal.errors import StateConflict
from opsportal.http import client_address, page_of
from projects.access import Action, can, get_project, require_ops


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@login_required
@require_safe
def project_alerts(request, name: str):
    project = get_project(request.user, name=name, action=Action.VIEW)
    silences, silences_error = [], ""
    try:
        silences = services.silences_for_project(project=project)
    except IntegrationError as exc:
        silences_error = str(exc)
    history, query = page_of(
        request,
        selectors.alerts_for_project(project=project, status=AlertStatus.RESOLVED).prefetch_related(
            "transitions"
        ),
    )
    return render(
        request,
        "alerting/project_alerts.html",
        {
            "project": project,
            "firing": selectors.firing_for_project(project=project),
            "history": history,
            "query": query,
            "silences": silences,
            "silences_error": silences_error,
            "can_act": can(request.user, Action.EDIT_PROJECT, project),
        },
    )


@login_required
@require_safe
def portal_alerts(request):
    """Alerts that name no known project: only ops see them."""
    require_ops(request.user)
    alerts, query = page_of(request, selectors.portal_wide_alerts())
    return render(request, "alerting/portal_alerts.html", {"alerts": alerts, "query": query})


def _act(request, name: str, run):
    project = get_project(request.user, name=name, action=Action.EDIT_PROJECT)
    try:
        text = run(project)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    except StateConflict as exc:
        messages.error(request, str(exc))
    except IntegrationError as exc:
        messages.error(request, _("Alertmanager: %(e)s") % {"e": exc})
    else:
        messages.success(request, text)
    return redirect("alerting:project-alerts", name=name)


@login_required
@require_POST
def alert_acknowledge(request, name: str, pk: int):
    def run(project):
        alert = selectors.alert_get(request.user, pk=pk, project=project, action=Action.EDIT_PROJECT)
        services.alert_acknowledge(actor=request.user, alert=alert, remote_addr=client_address(request))
        return _("Alert %(name)s acknowledged.") % {"name": alert.alertname}

    return _act(request, name, run)


@login_required
@require_POST
def alert_silence(request, name: str, pk: int):
    def run(project):
        alert = selectors.alert_get(request.user, pk=pk, project=project, action=Action.EDIT_PROJECT)
        try:
            minutes = int(request.POST.get("minutes", "").strip())
        except ValueError:
            raise ValidationError(_("Enter the silence's length as a whole number of minutes.")) from None
        services.silence_create(
            actor=request.user,
            alert=alert,
            minutes=minutes,
            comment=request.POST.get("comment", ""),
            remote_addr=client_address(request),
        )
        return _("Alert %(name)s silenced for %(minutes)d minutes.") % {
            "name": alert.alertname,
            "minutes": minutes,
        }

    return _act(request, name, run)


@login_required
@require_POST
def silence_expire(request, name: str, silence_id):
    def run(project):
        services.silence_expire(
            actor=request.user,
            project=project,
            silence_id=str(silence_id),
            remote_addr=client_address(request),
        )
        return _("Silence expired.")

    return _act(request, name, run)
