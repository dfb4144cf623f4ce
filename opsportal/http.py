"""Request helpers every view, API view and consumer shares."""

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
