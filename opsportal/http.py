"""Request helpers every view, API view and consumer shares."""

import hmac
import ipaddress

from django.conf import settings
from django.core.paginator import Page, Paginator


def client_address(request) -> str | None:
    """The address actions are audited with. One place, so that honouring a trusted proxy's
    X-Forwarded-For later changes every audit record at once."""
    return request.META.get("REMOTE_ADDR")


def page_of(request, items, per_page: int = 50) -> tuple[Page, str]:
    """The requested page of ``items`` and the query string without ``page``, for the links of
    templates/partials/pagination.html (which keep the filters)."""
    page = Paginator(items, per_page).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return page, query.urlencode()


def scraper_allowed(request) -> bool:
    """Whether a machine endpoint for Prometheus (the portal's /metrics, the scrape-target discovery)
    may answer: the bearer token ``MONITORING_TOKEN``, or a client inside ``MONITORING_ALLOWED_NETWORKS``.
    With neither configured nobody may."""
    token = settings.MONITORING_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, presented = header.partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(presented.strip().encode(), token.encode())
    ):
        return True
    try:
        address = ipaddress.ip_address(client_address(request) or "")
    except ValueError:
        return False
    return any(address in network for network in settings.MONITORING_ALLOWED_NETWORKS)
