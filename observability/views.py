from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_safe

from observability.forms import AuditFilterForm
from observability.models import AuditEvent
from observability.selectors import audit_events_for
from opsportal.http import page_of


@login_required
@require_safe
def audit_list(request):
    form = AuditFilterForm(request.GET or None)
    events = AuditEvent.objects.none()
    if not form.is_bound:
        events = audit_events_for(user=request.user)
    elif form.is_valid():
        events = audit_events_for(user=request.user, **form.cleaned_data)
    page, query = page_of(request, events)
    return render(request, "observability/audit.html", {"form": form, "page": page, "query": query})
