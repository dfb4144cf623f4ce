"""The environment page's "from the log pipeline" search: the service's lines read back from Kafka (a
fragment the page loads and reloads with HTMX; opened directly, a page of its own with the same form)."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from clusters.selectors import environments as selectors
from clusters.selectors import pipeline_logs
from integrations.errors import IntegrationError


def search_context(ref, params) -> tuple[dict, int]:
    """What the search fragment shows for these query parameters, and the HTTP status it deserves."""
    context = {
        "ref": ref,
        "project": ref.project,
        "levels": pipeline_logs.LEVELS,
        "minute_choices": pipeline_logs.MINUTE_CHOICES,
        "query": pipeline_logs.SearchQuery(),
        "result": None,
        "error": "",
    }
    try:
        context["query"] = query = pipeline_logs.parse_search(params)
    except ValidationError as exc:
        context["error"] = " ".join(exc.messages)
        return context, 400
    try:
        context["result"] = pipeline_logs.pipeline_search(ref, query)
    except IntegrationError as exc:
        context["error"] = _("Kafka could not be read: %(e)s") % {"e": exc}
        return context, 502
    return context, 200


@login_required
@require_safe
def pipeline_logs_search(request, name: str, environment: str):
    # The same access as pod logs: whoever sees the environment reads its lines.
    ref = selectors.environment_get(user=request.user, name=name, environment=environment)
    context, status = search_context(ref, request.GET)
    if request.headers.get("HX-Request"):
        # HTMX swaps only 2xx answers: the section gets errors as 200 with the message.
        return render(request, "clusters/environment/_pipeline_results.html", context)
    context["pipeline"] = pipeline_logs.pipeline_target(ref)
    return render(request, "clusters/environment/pipeline_logs.html", context, status=status)
