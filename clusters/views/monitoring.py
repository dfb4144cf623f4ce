"""Prometheus' machine endpoint: the scrape targets of a cluster (http_sd). Not for people, so it is
authenticated by the monitoring token or network (opsportal.http.scraper_allowed), not by a session."""

from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from clusters.models import Cluster
from clusters.selectors.monitoring import scrape_targets_cached
from integrations.errors import IntegrationError
from opsportal.http import scraper_allowed


def _error(detail: str, status: int) -> JsonResponse:
    return JsonResponse({"detail": detail, "errors": {}}, status=status)  # the API's one error shape


@require_safe
def prometheus_sd(request, cluster: str):
    if not scraper_allowed(request):
        return _error(_("A monitoring token or an allowed network is required."), 403)
    found = Cluster.objects.filter(name=cluster).first()
    if found is None:
        return _error(_("No such cluster."), 404)
    try:
        groups = scrape_targets_cached(cluster=found)
    except IntegrationError as exc:
        # Prometheus keeps the last good list on any non-200, so an apiserver hiccup loses no target.
        return _error(str(exc), 503)
    return JsonResponse(groups, safe=False)
