import difflib

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from configs.selectors import apollo_settings_of
from deploys import recipes, selectors, services
from deploys.choices import ReleaseStatus
from deploys.forms.releases import RecipeForm, ReleaseForm
from deploys.models import BuildRecipe
from observability.events import current_seq, project_stream
from opsportal.errors import StateConflict
from opsportal.forms import call_service, service_error_message
from opsportal.http import client_address
from projects.access import Action, allowed_actions, get_project, is_ops
from projects.choices import Language


@login_required
def release_list(request, name: str):
    project = get_project(request.user, name=name, action=Action.VIEW)
    actions = allowed_actions(request.user, project)
    apollo = apollo_settings_of(project)
    form = ReleaseForm(
        request.POST or None, initial={"branch": "main"}, namespaces=apollo.namespaces if apollo else []
    )
    if request.method == "POST":
        if Action.RELEASE_TEST not in actions:
            raise PermissionDenied(_("You may not release this project."))
        if form.is_valid():
            caller = {"actor": request.user, "project": project, "remote_addr": client_address(request)}
            release = call_service(form, services.release_submit, **caller, **form.cleaned_data)
            if release is not None:
                return redirect("release-detail", name=project.name, pk=release.pk)
    context = {
        "project": project,
        "form": form,
        "can_release": Action.RELEASE_TEST in actions,
        "releases": selectors.releases_for_project(project=project)[:100],
        "history": {
            env: selectors.deployment_history(project=project, environment=env)[:20]
            for env in ("test", "prod")
        },
        "rollback_targets": {
            env: list(services.rollback_targets(project=project, environment=env)[:20])
            for env in ("test", "prod")
        },
        "can_rollback": {"test": Action.RELEASE_TEST in actions, "prod": Action.RELEASE_PROD in actions},
        "stream": project_stream(project.pk),
        "stream_seq": current_seq(project_stream(project.pk)),
    }
    return render(request, "deploys/release_list.html", context)


@login_required
@require_safe
def release_detail(request, name: str, pk: int):
    project = get_project(request.user, name=name, action=Action.VIEW)
    release = get_object_or_404(selectors.releases_for_project(project=project), pk=pk)
    actions = allowed_actions(request.user, project)
    context = {
        "project": project,
        "release": release,
        "config_changes": services.change_set_shown(release),
        "Status": ReleaseStatus,
        "steps": selectors.release_steps(release),
        "verification": selectors.release_verification(release),
        "records": release.deployments.select_related("actor"),
        "can_confirm": Action.CONFIRM_RELEASE in actions
        and release.environment == "test"
        and release.status == ReleaseStatus.DEPLOYED
        and not release.confirmed_by_id,
        "can_promote": Action.RELEASE_PROD in actions
        and release.environment == "test"
        and not services.promotion_problem(actor=request.user, release=release),
        "promotion_problem": services.promotion_problem(actor=request.user, release=release)
        if release.environment == "test"
        else "",
        "can_cancel": release.is_active
        and release.status != ReleaseStatus.DEPLOYING
        and (Action.RELEASE_PROD if release.environment == "prod" else Action.RELEASE_TEST) in actions,
        "stream": project_stream(project.pk),
        "stream_seq": current_seq(project_stream(project.pk)),
    }
    template = "deploys/_release_status.html" if request.htmx else "deploys/release_detail.html"
    return render(request, template, context)


@login_required
@require_POST
def release_action(request, name: str, pk: int, action: str):
    project = get_project(request.user, name=name, action=Action.VIEW)
    release = get_object_or_404(selectors.releases_for_project(project=project), pk=pk)
    target = release
    try:
        if action == "confirm":
            services.release_confirm(
                actor=request.user, release_id=release.pk, remote_addr=client_address(request)
            )
        elif action == "promote":
            target = services.release_promote(
                actor=request.user, release_id=release.pk, remote_addr=client_address(request)
            )
        elif action == "cancel":
            services.release_cancel(
                actor=request.user, release_id=release.pk, remote_addr=client_address(request)
            )
        else:
            raise Http404("No such action.")
    except (ValidationError, StateConflict) as exc:
        messages.error(request, service_error_message(exc))
    return redirect("release-detail", name=project.name, pk=target.pk)


@login_required
@require_POST
def rollback(request, name: str, environment: str):
    project = get_project(request.user, name=name, action=Action.VIEW)
    if environment not in ("test", "prod"):
        raise Http404("No such environment.")
    try:
        record_id = int(request.POST.get("record", ""))
    except ValueError:
        messages.error(request, _("Choose the deployment to return to."))
        return redirect("release-list", name=project.name)
    try:
        services.release_rollback(
            actor=request.user,
            project=project,
            environment=environment,
            record_id=record_id,
            remote_addr=client_address(request),
        )
        messages.success(request, _("Rolling back %(env)s…") % {"env": environment})
    except (ValidationError, StateConflict) as exc:
        messages.error(request, service_error_message(exc))
    return redirect("release-list", name=project.name)


@login_required
@require_safe
def release_queue(request):
    status = request.GET.get("status", "")
    if status not in ReleaseStatus.values:
        status = ""
    releases = selectors.releases_visible(user=request.user, status=status)
    page = Paginator(releases, 50).get_page(request.GET.get("page"))
    return render(
        request, "deploys/release_queue.html", {"page": page, "status": status, "Status": ReleaseStatus}
    )


def _ops_only(request) -> None:
    if not is_ops(request.user):
        raise Http404("No such page.")


@login_required
@require_safe
def recipe_list(request):
    _ops_only(request)
    latest = {}
    for recipe in BuildRecipe.objects.order_by("language", "-version"):
        latest.setdefault(recipe.language, recipe)
    # What {{ base_image }} becomes in each language's Dockerfile (OPSPORTAL_BASE_IMAGES).
    bases = {code: recipes.base_image(code) for code in Language.values}
    return render(
        request,
        "deploys/recipe_list.html",
        {
            "recipes": latest,
            "languages": Language.choices,
            "base_images": bases,
            "prestop_helper_image": recipes.prestop_helper_image(),
        },
    )


@login_required
def recipe_edit(request, language: str):
    _ops_only(request)
    if language not in Language.values:
        raise Http404("No such language.")
    history = list(BuildRecipe.objects.filter(language=language).select_related("created_by"))
    current = history[0] if history else None
    form = RecipeForm(
        request.POST or None,
        initial={
            "dockerfile": current.dockerfile if current else "",
            "build_shell": current.build_shell if current else "",
        },
    )
    if request.method == "POST" and form.is_valid():
        services.recipe_update(
            actor=request.user, language=language, remote_addr=client_address(request), **form.cleaned_data
        )
        messages.success(request, _("Recipe saved."))
        return redirect("recipe-edit", language=language)
    diffs = []
    for newer, older in zip(history, history[1:], strict=False):
        diff = "".join(
            difflib.unified_diff(
                (older.dockerfile + "\n" + older.build_shell).splitlines(keepends=True),
                (newer.dockerfile + "\n" + newer.build_shell).splitlines(keepends=True),
                fromfile=f"v{older.version}",
                tofile=f"v{newer.version}",
            )
        )
        diffs.append((newer, diff))
    return render(
        request,
        "deploys/recipe_edit.html",
        {
            "language": language,
            "language_label": Language(language).label,
            "form": form,
            "current": current,
            "history": diffs + ([(history[-1], "")] if history else []),
        },
    )
