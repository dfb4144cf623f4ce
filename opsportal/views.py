from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import (
    HttpResponse,
    HttpResponseForbidden,
    HttpResponseNotAllowed,
    HttpResponseNotFound,
    JsonResponse,
)
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import check_for_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from clusters.selectors.environments import environment_get
from observability import services as observability_services
from observability.events import current_seq, user_stream
from observability.selectors import audit_events_for
from opsportal import cockpit, dora
from opsportal import metrics as portal_metrics
from opsportal.http import scraper_allowed
from projects import services as project_services
from projects.access import Action, require_ops, visible_projects
from projects.choices import Environment


@login_required
@require_safe
def dashboard(request):
    projects = visible_projects(request.user)
    context = {
        "project_count": projects.count(),
        "my_projects": projects.filter(members__user=request.user).distinct()[:10],
        "recent_events": audit_events_for(user=request.user)[:10],
        "user_stream": user_stream(request.user.pk),
        "user_stream_seq": current_seq(user_stream(request.user.pk)),
    }
    return render(request, "dashboard.html", context)


@login_required
@require_POST
def worker_ping(request):
    observability_services.worker_ping(user=request.user)
    return HttpResponse(status=204)


def set_language(request):
    """Switch language: saved on the profile for a signed-in user, in a cookie for everyone."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    language = request.POST.get("language", "")
    next_url = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = "/"
    response = redirect(next_url)
    if not check_for_language(language):
        return response
    if request.user.is_authenticated:
        project_services.user_language_set(user=request.user, language=language)
    response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, samesite="Lax")
    return response


@require_safe
def metrics(request):
    """The portal's own metrics for Prometheus (opsportal.metrics). Not a page and not part of the API:
    a machine reads it, with the monitoring token or from an allowed network; with neither configured
    it is off."""
    if not settings.MONITORING_TOKEN and not settings.MONITORING_ALLOWED_NETWORKS:
        return HttpResponseNotFound("Not found.\n", content_type="text/plain")
    if not scraper_allowed(request):
        return HttpResponseForbidden(
            "Forbidden: send the monitoring token (Authorization: Bearer) or scrape from an allowed "
            "network.\n",
            content_type="text/plain",
        )
    return HttpResponse(portal_metrics.exposition(), content_type=portal_metrics.CONTENT_TYPE)


# --- the project cockpit: the overview tab loads these fragments --------------------------------------


@login_required
@require_safe
def project_cockpit(request, name: str):
    """The database part, for every environment; each onboarded one loads its live parts after it."""
    found = cockpit.cockpit_get(user=request.user, name=name)
    context = {
        "project": found.project,
        "cockpit": found.data,
        "can_file": Action.FILE_TICKET in found.actions,
        "poll_seconds": settings.COCKPIT_POLL_SECONDS,
    }
    return render(request, "cockpit/_cockpit.html", context)


@login_required
@require_safe
def project_cockpit_live(request, name: str, environment: str):
    ref = environment_get(user=request.user, name=name, environment=environment)
    return render(request, "cockpit/_live.html", {"ref": ref, "live": cockpit.cockpit_live(ref)})


@login_required
@require_safe
def project_cockpit_traffic(request, name: str, environment: str):
    ref = environment_get(user=request.user, name=name, environment=environment)
    traffic = cockpit.cockpit_traffic(ref)
    errors_now = cockpit.last_value(traffic["errors"])
    context = {
        "ref": ref,
        "traffic": traffic,
        "requests_line": cockpit.sparkline(traffic["requests"]),
        "errors_line": cockpit.sparkline(traffic["errors"]),
        "requests_now": cockpit.last_value(traffic["requests"]),
        "errors_percent": None if errors_now is None else errors_now * 100,
    }
    return render(request, "cockpit/_traffic.html", context)


# --- DORA metrics: a project's (a fragment of its overview) and every project's (ops) -------------------


def _dora_choice(request) -> tuple[str, int]:
    """The environment and period (days) asked for; an unknown value is the default, never an error."""
    environment = request.GET.get("environment", Environment.PROD)
    if environment not in Environment.values:
        environment = Environment.PROD
    days = request.GET.get("days", "")
    days = int(days) if days.isdigit() and int(days) in dora.PERIOD_DAYS else dora.DEFAULT_DAYS
    return environment, days


def _dora_context(report: dict, environment: str, days: int) -> dict:
    changes = [
        {
            **change,
            "lead_time_text": dora.duration_text(change["lead_time_seconds"]),
            "restore_text": dora.duration_text(change["restore_seconds"])
            if change["restored_at"]
            else _("not restored"),
            "causes_text": ", ".join(str(dora.CAUSE_LABELS[cause]) for cause in change["causes"]),
        }
        for change in report.get("changes", [])
    ]
    rows = [
        {
            **row,
            "lead_median": dora.duration_text(row["lead_time"]["median_seconds"]),
            "lead_p90": dora.duration_text(row["lead_time"]["p90_seconds"]),
            "restore_median": dora.duration_text(row["time_to_restore"]["median_seconds"]),
        }
        for row in report.get("projects", [])
    ]
    return {
        "report": {**report, "changes": changes},
        "rows": rows,
        "environment": environment,
        "days": days,
        "environments": Environment.choices,
        "period_days": dora.PERIOD_DAYS,
        "lead_time_median": dora.duration_text(report["lead_time"]["median_seconds"]),
        "lead_time_p90": dora.duration_text(report["lead_time"]["p90_seconds"]),
        "restore_median": dora.duration_text(report["time_to_restore"]["median_seconds"]),
        "restore_p90": dora.duration_text(report["time_to_restore"]["p90_seconds"]),
        "chart_data": dora.chart_data(report),
    }


@login_required
@require_safe
def project_dora(request, name: str):
    environment, days = _dora_choice(request)
    period = dora.period_ending(timezone.now(), days)
    project, report = dora.dora_project(user=request.user, name=name, environment=environment, period=period)
    context = {"project": project, **_dora_context(report, environment, days)}
    return render(request, "cockpit/_dora.html", context)


@login_required
@require_safe
def dora_overview(request):
    require_ops(request.user)
    environment, days = _dora_choice(request)
    period = dora.period_ending(timezone.now(), days)
    report = dora.dora_overview(user=request.user, environment=environment, period=period)
    return render(request, "dora/overview.html", _dora_context(report, environment, days))


def csrf_failure(request, reason=""):
    return render(request, "403_csrf.html", {"reason": reason}, status=403)


def bad_request(request, exception=None):
    return render(request, "400.html", status=400)


def permission_denied(request, exception=None):
    return render(request, "403.html", {"message": str(exception or "")}, status=403)


def page_not_found(request, exception=None):
    # An API path no route matches (a negative id, a typo) answers like the API does: the one error shape.
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": _("Not found."), "errors": {}}, status=404)
    return render(request, "404.html", status=404)


def server_error(request):
    return render(request, "500.html", status=500)
