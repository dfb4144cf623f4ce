from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from clusters.forms.workload import OverridesForm
from clusters.workload import manifests
from deploys import preview, selectors, services
from deploys.choices import EDITABLE_BY_FILER, EDITABLE_BY_OPS, TicketStatus
from deploys.forms.tickets import (
    ApproveForm,
    EditTicketForm,
    NewTicketForm,
    RejectForm,
    TicketForm,
    initial_request,
)
from observability.events import current_seq, project_stream
from opsportal.errors import StateConflict
from opsportal.forms import call_service, service_error_message
from opsportal.http import client_address
from projects.access import Action, allowed_actions, get_project, is_ops
from projects.choices import Environment


def _ticket(request, name: str, pk: int, action: Action = Action.VIEW):
    project = get_project(request.user, name=name, action=action)
    return project, get_object_or_404(selectors.tickets_for_project(project=project), pk=pk)


@login_required
def ticket_new(request, name: str):
    project = get_project(request.user, name=name, action=Action.FILE_TICKET)
    environment = request.POST.get("environment") or request.GET.get("environment") or Environment.TEST
    if environment not in Environment.values:
        environment = Environment.TEST
    if request.method == "POST":
        form = NewTicketForm(request.POST, project=project, environment=environment)
        if form.is_valid():
            ticket = call_service(
                form,
                services.ticket_create,
                actor=request.user,
                project=project,
                environment=environment,
                request=form.request_data,
                secret_env_vars=form.secret_env_changes,
                submit="submit" in request.POST,
                remote_addr=client_address(request),
            )
            if ticket is not None:
                messages.success(request, _("Ticket #%(id)s saved.") % {"id": ticket.pk})
                return redirect("ticket-detail", name=project.name, pk=ticket.pk)
    else:
        form = NewTicketForm(
            initial={**initial_request(project.language), "environment": environment},
            project=project,
            environment=environment,
        )
    return render(request, "deploys/ticket_form.html", {"project": project, "form": form, "ticket": None})


@login_required
def ticket_edit(request, name: str, pk: int):
    project, ticket = _ticket(request, name, pk)
    ops = is_ops(request.user)
    editable = ticket.status in (EDITABLE_BY_OPS if ops else EDITABLE_BY_FILER)
    if not ops:
        services.check_ticket_change(request.user, ticket)
    if not editable:
        raise PermissionDenied(_("This ticket cannot be edited now."))
    knobs = manifests.OVERRIDABLE if ops else {}
    try:
        spec = services.ticket_spec(ticket)
    except ValidationError:
        spec = None
    if request.method == "POST":
        overrides_form = OverridesForm(request.POST, knobs=knobs, spec=spec, prefix="ovr")
        overrides = overrides_form.overrides() if ops and overrides_form.is_valid() else ticket.overrides
        form = EditTicketForm(
            request.POST,
            project=project,
            environment=ticket.environment,
            cluster=ticket.cluster,
            overrides=overrides,
            secret_names=ticket.request.get("secret_env_names") or [],
        )
        if form.is_valid() and (not ops or overrides_form.is_valid()):
            updated = call_service(
                form,
                services.ticket_update,
                actor=request.user,
                ticket_id=ticket.pk,
                request=form.request_data,
                overrides=overrides if ops else None,
                secret_env_vars=form.secret_env_changes,
                version=form.cleaned_data["version"],
                remote_addr=client_address(request),
            )
            if updated is not None:
                messages.success(request, _("Ticket #%(id)s updated.") % {"id": ticket.pk})
                return redirect("ticket-detail", name=project.name, pk=ticket.pk)
    else:
        initial = TicketForm.initial_from_request(ticket.request)
        form = EditTicketForm(
            initial={**initial, "version": selectors.ticket_version(ticket)},
            project=project,
            environment=ticket.environment,
            secret_names=ticket.request.get("secret_env_names") or [],
        )
        overrides_form = OverridesForm(initial=ticket.overrides, knobs=knobs, spec=spec, prefix="ovr")
    return render(
        request,
        "deploys/ticket_form.html",
        {"project": project, "form": form, "ticket": ticket, "overrides_form": overrides_form},
    )


def _detail_context(request, project, ticket) -> dict:
    actions = allowed_actions(request.user, project)
    try:
        rendered = manifests.render(services.ticket_spec(ticket))
        guardrails, spec_error = rendered.guardrails, ""
    except ValidationError as exc:
        guardrails, spec_error = [], "; ".join(exc.messages)
    ops = is_ops(request.user)
    return {
        "project": project,
        "ticket": ticket,
        "guardrails": guardrails,
        "spec_error": spec_error,
        "can_edit": ticket.status in (EDITABLE_BY_OPS if ops else EDITABLE_BY_FILER)
        and (ops or Action.FILE_TICKET in actions),
        "can_file": Action.FILE_TICKET in actions,
        "can_approve": Action.APPROVE_TICKET in actions,
        "approve_form": ApproveForm(
            environment=ticket.environment,
            initial={"cluster": getattr(selectors.approval_cluster(ticket=ticket), "pk", None)},
        ),
        "reject_form": RejectForm(),
        "stream": project_stream(project.pk),
        "stream_seq": current_seq(project_stream(project.pk)),
        "Status": TicketStatus,
    }


@login_required
@require_safe
def ticket_detail(request, name: str, pk: int):
    project, ticket = _ticket(request, name, pk)
    template = "deploys/_ticket_status.html" if request.htmx else "deploys/ticket_detail.html"
    return render(request, template, _detail_context(request, project, ticket))


@login_required
@require_safe
def ticket_preview(request, name: str, pk: int):
    project, ticket = _ticket(request, name, pk)
    return render(request, "deploys/_ticket_preview.html", {"preview": preview.ticket_preview(ticket=ticket)})


@login_required
@require_POST
def ticket_action(request, name: str, pk: int, action: str):
    project, ticket = _ticket(request, name, pk)
    actor, ip = request.user, client_address(request)
    try:
        if action == "submit":
            services.ticket_submit(actor=actor, ticket_id=ticket.pk, remote_addr=ip)
        elif action == "withdraw":
            services.ticket_withdraw(actor=actor, ticket_id=ticket.pk, remote_addr=ip)
        elif action in ("approve", "retry"):
            form = ApproveForm(request.POST, environment=ticket.environment)
            cluster = form.cleaned_data["cluster"] if form.is_valid() else None
            services.ticket_approve(
                actor=actor, ticket_id=ticket.pk, cluster_id=cluster.pk if cluster else None, remote_addr=ip
            )
        elif action == "reject":
            services.ticket_reject(
                actor=actor, ticket_id=ticket.pk, reason=request.POST.get("reason", ""), remote_addr=ip
            )
        else:
            return render(request, "404.html", status=404)
    except (ValidationError, StateConflict) as exc:
        messages.error(request, service_error_message(exc))
    return redirect("ticket-detail", name=project.name, pk=ticket.pk)


@login_required
@require_safe
def ticket_queue(request):
    status = request.GET.get("status", "")
    if status and status not in TicketStatus.values:
        status = ""
    page = Paginator(selectors.tickets_visible(user=request.user, status=status), 50).get_page(
        request.GET.get("page")
    )
    return render(
        request, "deploys/ticket_queue.html", {"page": page, "status": status, "Status": TicketStatus}
    )
