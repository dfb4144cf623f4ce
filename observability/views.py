from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_safe

from observability.forms import AuditFilterForm
from observability.models import AuditEvent
from observability.selectors import audit_events_for


@login_required
@require_safe
def audit_list(request):
    form = AuditFilterForm(request.GET or None)
    events = AuditEvent.objects.none()
    if not form.is_bound:
        events = audit_events_for(user=request.user)
    elif form.is_valid():
        events = audit_events_for(user=request.user, **form.cleaned_data)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request, "observability/audit.html", {"form": form, "page": page, "query": query.urlencode()}
    )
