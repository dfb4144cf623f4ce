"""Pages: alert channels, their delivery log, and the "send test message" button. Portal-wide channels
live under /channels/ (ops only); a project's under /projects/<name>/channels/."""

from __future__ import annotations

from functools import partial

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from alerting.forms.channels import ChannelForm
from alerting.selectors import channels as selectors
from alerting.services import channels as services
from opsportal.errors import StateConflict
from opsportal.forms import call_service, service_error_message
from opsportal.http import client_address
from projects.access import can

LOG_PAGE_SIZE = 50


def _urls(name: str | None) -> dict:
    """URL names and arguments for the two places channels live."""
    if name is None:
        return {"prefix": "ops-channel", "args": []}
    return {"prefix": "channel", "args": [name]}


def _context(request, name: str | None, **extra) -> dict:
    project = selectors.channel_scope(request.user, project_name=name)
    manage = project is None or can(request.user, selectors.MANAGE, project)
    urls = _urls(name)
    # Every channel page hangs off the list's URL: <base>new/, <base><pk>/, <base><pk>/edit/, …
    base = reverse(f"alerting:{urls['prefix']}-list", args=urls["args"])
    return {"project": project, "can_manage": manage, "base": base, **extra}


def _to_detail(name: str | None, pk: int):
    return redirect("alerting:ops-channel" if name is None else "alerting:channel", *_urls(name)["args"], pk)


@login_required
@require_safe
def channel_list(request, name: str | None = None):
    channels = selectors.channel_list(user=request.user, project_name=name)
    return render(request, "alerting/channels/list.html", _context(request, name, channels=channels))


def _form_page(request, name: str | None, form: ChannelForm, channel, save, done: str):
    """The add and edit pages: the service's refusals land on the form's fields."""
    if request.method == "POST" and form.is_valid():
        saved = call_service(
            form, save, actor=request.user, remote_addr=client_address(request), **form.cleaned_data
        )
        if saved is not None:
            messages.success(request, done % {"name": saved.name})
            return _to_detail(name, saved.pk)
    return render(
        request,
        "alerting/channels/form.html",
        _context(request, name, form=form, channel=channel),
        status=400 if form.is_bound else 200,
    )


@login_required
def channel_create(request, name: str | None = None):
    project = selectors.channel_scope(request.user, project_name=name, action=selectors.MANAGE)
    save = partial(services.channel_create, project=project)
    return _form_page(
        request, name, ChannelForm(request.POST or None), None, save, _("Channel %(name)s added.")
    )


@login_required
@require_safe
def channel_detail(request, pk: int, name: str | None = None):
    channel = selectors.channel_get(user=request.user, pk=pk, project_name=name)
    log = Paginator(selectors.delivery_log(channel=channel), LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    context = _context(
        request, name, channel=channel, page_obj=log, has_secret=services.channel_has_secret(channel)
    )
    if request.headers.get("HX-Request"):
        return render(request, "alerting/channels/_log.html", context)
    return render(request, "alerting/channels/detail.html", context)


@login_required
def channel_edit(request, pk: int, name: str | None = None):
    channel = selectors.channel_get(user=request.user, pk=pk, project_name=name, action=selectors.MANAGE)
    form = ChannelForm(request.POST or None, channel=channel)
    save = partial(services.channel_update, channel=channel)
    return _form_page(request, name, form, channel, save, _("Channel %(name)s saved."))


@login_required
def channel_delete(request, pk: int, name: str | None = None):
    channel = selectors.channel_get(user=request.user, pk=pk, project_name=name, action=selectors.MANAGE)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    services.channel_delete(actor=request.user, channel=channel, remote_addr=client_address(request))
    messages.success(request, _("Channel %(name)s removed.") % {"name": channel.name})
    urls = _urls(name)
    return redirect(f"alerting:{urls['prefix']}-list", *urls["args"])


@login_required
def channel_test(request, pk: int, name: str | None = None):
    channel = selectors.channel_get(user=request.user, pk=pk, project_name=name, action=selectors.MANAGE)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        services.channel_send_test(actor=request.user, channel=channel, remote_addr=client_address(request))
    except StateConflict as exc:
        messages.error(request, service_error_message(exc))
    else:
        messages.success(request, _("Test message queued: its row in the delivery log shows how it went."))
    return _to_detail(name, channel.pk)
