"""Pages: a project's Apollo overview and settings, and one namespace per environment: its items, the
diff against the latest release, item edits, release and rollback. Each action posts to its own URL;
with HTMX the namespace's section comes back in place (200, with the outcome or the refusal in it),
without it the page redirects on success or comes back with the refusal and its status."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from configs import selectors
from configs.errors import ConfigError
from configs.forms import (
    ApolloSettingsForm,
    ItemCreateForm,
    ItemDeleteForm,
    ItemEditForm,
    ReleaseForm,
    RollbackForm,
)
from configs.masking import is_secret_key
from configs.services import apollo as services
from configs.services.settings import apollo_settings_has_token, apollo_settings_update
from opsportal.errors import StateConflict
from opsportal.forms import add_service_errors
from opsportal.http import client_address
from projects.access import Action, allowed_actions, get_project, is_ops
from projects.choices import Environment

PAGE = "configs/namespace.html"
SECTION = "configs/_namespace.html"


@login_required
@require_safe
def apollo_index(request, name: str):
    project, row, environments = selectors.apollo_overview(user=request.user, name=name)
    return render(
        request,
        "configs/index.html",
        {
            "project": project,
            "row": row,
            "environments": environments,
            "apollo_enabled": selectors.apollo_enabled(),
            "has_token": apollo_settings_has_token(row),
            "can_edit_settings": Action.EDIT_PROJECT in allowed_actions(request.user, project),
        },
    )


@login_required
def apollo_settings(request, name: str):
    project = get_project(request.user, name=name, action=Action.EDIT_PROJECT)
    row = selectors.apollo_settings_of(project)
    form = ApolloSettingsForm(request.POST or None, row=row, is_ops=is_ops(request.user))
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                apollo_settings_update(
                    actor=request.user,
                    project=project,
                    remote_addr=client_address(request),
                    **form.cleaned_data,
                )
            except ValidationError as exc:
                add_service_errors(form, exc)
            except PermissionDenied as exc:
                form.add_error("owner_may_edit_prod", str(exc))
                status = 403
            else:
                messages.success(request, _("Apollo settings saved."))
                return redirect("configs:apollo", name=project.name)
    return render(
        request,
        "configs/settings.html",
        {"project": project, "row": row, "form": form, "has_token": apollo_settings_has_token(row)},
        status=status,
    )


def _title_suggestion(user) -> str:
    return f"{timezone.localtime().strftime('%Y%m%d-%H%M%S')}-{user.get_username()}"[:64]


def _context(request, target, *, bound: dict | None = None, notice: str = "", error: str = "") -> dict:
    """The namespace page's context; ``bound`` puts a refused form back in its place (``create``,
    ``release``, ``rollback``, or ``edit:<key>`` / ``delete:<key>``)."""
    bound = bound or {}
    view = selectors.namespace_read(target)
    rows = []
    for item in view.items:
        edit = bound.get(f"edit:{item.key}") or ItemEditForm(
            initial={
                "key": item.key,
                "version": item.version,
                "value": "" if item.secret else item.value,
                "comment": item.comment,
            },
            secret=item.secret,
            auto_id=f"id_edit_{len(rows)}_%s",
        )
        delete = bound.get(f"delete:{item.key}") or ItemDeleteForm(
            initial={"key": item.key, "version": item.version}, auto_id=f"id_delete_{len(rows)}_%s"
        )
        rows.append({"item": item, "edit": edit, "delete": delete})
    settings_row = target.settings
    return {
        "project": target.project,
        "target": target,
        "row": settings_row,
        "view": view,
        "rows": rows,
        "environments": [(env.value, env.label, settings_row.apollo_env(env.value)) for env in Environment],
        "create_form": bound.get("create") or ItemCreateForm(auto_id="id_create_%s"),
        "release_form": bound.get("release")
        or ReleaseForm(initial={"title": _title_suggestion(request.user)}, auto_id="id_release_%s"),
        "rollback_error": error if "rollback" in bound else "",
        "notice": notice,
        "error": "" if "rollback" in bound else error,
        "section_url": request.path,
    }


@login_required
@require_safe
def namespace_page(request, name: str, environment: str, namespace: str):
    target = selectors.apollo_target(
        user=request.user, name=name, environment=environment, namespace=namespace
    )
    context = _context(request, target)
    return render(request, SECTION if request.htmx else PAGE, context)


def _page_url(target) -> str:
    return reverse("configs:namespace", args=[target.project.name, target.environment, target.namespace])


def _status(exc) -> int:
    if isinstance(exc, ConfigError):
        return exc.status
    if isinstance(exc, StateConflict):
        return 409
    return 400


def _unseen_errors(form, *, everything: bool) -> str:
    """The refusals the page shows above the namespace: those a form cannot show beside a field of its
    own (not about one field, or about a hidden one), or all of them for a form the page does not
    render again (a rollback's)."""
    unseen = []
    for field, errors in form.errors.items():
        shown = field in form.fields and not form.fields[field].widget.is_hidden
        if everything or not shown:
            unseen += [str(e) for e in errors]
    return " ".join(unseen)


def _act(request, name, environment, namespace, *, slot, form, run, done):
    """Check the right, validate, run the service, and answer: the section (HTMX), a redirect, or the page
    with the refusal in place. ``slot`` names where the bound form goes back (see ``_context``)."""
    target = selectors.apollo_target(
        user=request.user, name=name, environment=environment, namespace=namespace, edit=True
    )
    form = form(request.POST)
    status = 400
    if form.is_valid():
        try:
            outcome = run(target, form.cleaned_data)
        except (ValidationError, StateConflict, ConfigError) as exc:
            status = _status(exc)
            if isinstance(exc, ValidationError):
                add_service_errors(form, exc)
            else:
                form.add_error(None, str(exc))
        else:
            notice = done(outcome) if callable(done) else done
            if not request.htmx:
                messages.success(request, notice)
                return redirect(_page_url(target))
            return render(request, SECTION, _context(request, target, notice=notice))
    slot = slot(form) if callable(slot) else slot
    error = _unseen_errors(form, everything=slot == "rollback")
    context = _context(request, target, bound={slot: form}, error=error)
    # HTMX swaps only 2xx answers: a refusal comes back as 200 with the refusal shown in its place.
    return render(request, SECTION if request.htmx else PAGE, context, status=200 if request.htmx else status)


def _common(request, target) -> dict:
    return {
        "actor": request.user,
        "project": target.project,
        "environment": target.environment,
        "namespace": target.namespace,
        "remote_addr": client_address(request),
    }


@login_required
@require_POST
def item_create(request, name: str, environment: str, namespace: str):
    def run(target, data):
        return services.config_item_create(
            **_common(request, target), key=data["key"], value=data["value"], comment=data["comment"]
        )

    return _act(
        request,
        name,
        environment,
        namespace,
        slot="create",
        form=ItemCreateForm,
        run=run,
        done=lambda item: _("%(key)s added. Release the namespace to publish it.") % {"key": item.key},
    )


def _edit_slot(form) -> str:
    return f"edit:{form.data.get('key', '')}"


@login_required
@require_POST
def item_edit(request, name: str, environment: str, namespace: str):
    def run(target, data):
        secret = is_secret_key(data["key"])
        return services.config_item_update(
            **_common(request, target),
            key=data["key"],
            # A secret's field starts empty: left empty, the stored value stays.
            value=None if secret and data["value"] == "" else data["value"],
            comment=data["comment"],
            version=data["version"],
        )

    def form(data):
        return ItemEditForm(data, secret=is_secret_key(data.get("key", "")))

    return _act(
        request,
        name,
        environment,
        namespace,
        slot=_edit_slot,
        form=form,
        run=run,
        done=lambda item: _("%(key)s saved. Release the namespace to publish it.") % {"key": item.key},
    )


@login_required
@require_POST
def item_delete(request, name: str, environment: str, namespace: str):
    def run(target, data):
        services.config_item_delete(**_common(request, target), key=data["key"], version=data["version"])
        return data["key"]

    return _act(
        request,
        name,
        environment,
        namespace,
        slot=lambda form: f"delete:{form.data.get('key', '')}",
        form=ItemDeleteForm,
        run=run,
        done=lambda key: _("%(key)s deleted. Release the namespace to publish it.") % {"key": key},
    )


@login_required
@require_POST
def release_create(request, name: str, environment: str, namespace: str):
    def run(target, data):
        return services.config_release(
            **_common(request, target), title=data["title"], comment=data["comment"]
        )

    return _act(
        request,
        name,
        environment,
        namespace,
        slot="release",
        form=ReleaseForm,
        run=run,
        done=lambda record: _("Released as #%(id)s “%(title)s”.")
        % {"id": record.release_id, "title": record.title},
    )


@login_required
@require_POST
def release_rollback(request, name: str, environment: str, namespace: str):
    def run(target, data):
        return services.config_rollback(
            **_common(request, target),
            to_release_id=data["to_release"],
            current_release_id=data["current"],
            count=data["count"],
        )

    def done(result):
        current = f"#{result.current.id} “{result.current.name}”" if result.current else "?"
        return _("Rolled back %(n)d release(s): the current release is now %(current)s.") % {
            "n": len(result.undone),
            "current": current,
        }

    return _act(request, name, environment, namespace, slot="rollback", form=RollbackForm, run=run, done=done)
