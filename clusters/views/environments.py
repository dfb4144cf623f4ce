"""Pages of a running project environment: the live overview, its actions, configuration and logs."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext, pgettext
from django.views.decorators.http import require_POST, require_safe

from clusters.choices import ConfigChangeStatus
from clusters.forms.environments import EnvironmentConfigForm
from clusters.forms.workload import OverridesForm
from clusters.selectors import environments as selectors
from clusters.selectors import monitoring as monitoring_selectors
from clusters.selectors import pipeline_logs
from clusters.selectors.dashboards import dashboard_summary
from clusters.services import config_changes
from clusters.services import environments as services
from clusters.services.terminal import terminal_action
from clusters.workload import manifests
from integrations.errors import IntegrationError
from observability.events import current_seq, project_stream
from opsportal.errors import StateConflict
from opsportal.forms import add_service_errors
from opsportal.http import client_address
from projects.access import Action, is_ops

DOWNLOAD_TAIL = 1000
MAX_TAIL = 100_000


def _result(request, text: str, *, ok: bool, status: int = 200):
    # HTMX swaps only 2xx answers: the page gets refusals as 200 with a red message (data-ok="false").
    if ok or request.headers.get("HX-Request"):
        status = 200
    return render(request, "clusters/environment/_result.html", {"text": text, "ok": ok}, status=status)


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@login_required
@require_safe
def environment_page(request, name: str, environment: str):
    ref = selectors.environment_get(user=request.user, name=name, environment=environment)
    actions = ref.actions
    state = selectors.environment_state(ref)
    log_search = selectors.log_search_url(ref, "__POD__")
    return render(
        request,
        "clusters/environment/page.html",
        {
            "ref": ref,
            "project": ref.project,
            "state": state,
            "can_operate": selectors.operate_action(environment) in actions,
            "can_edit_config": Action.EDIT_CONFIG in actions,
            "can_terminal": terminal_action(environment) in actions,
            "can_teardown": is_ops(request.user),
            "ws_url": f"/ws/environments/{ref.project.name}/{environment}/",
            "log_search": log_search,
            "dashboard": dashboard_summary(ref.environment),
            "monitoring": _monitoring(),
            # Database only: the search and the tail load after the page (clusters.views.pipeline_logs).
            "pipeline": pipeline_logs.pipeline_target(ref),
            "levels": pipeline_logs.LEVELS,
            "minute_choices": pipeline_logs.MINUTE_CHOICES,
            "query": pipeline_logs.SearchQuery(),
            "pipeline_i18n": {
                "connecting": _("connecting…"),
                "live": _("live: new lines appear here"),
                "stopped": _("stopped"),
                "closed": _("disconnected, retrying…"),
                "skipped": _("%(n)s older lines skipped: more arrived than the tail shows.") % {"n": "{n}"},
                "kafkaTime": _("Kafka time"),
                "cut": _("cut at 64 KiB"),
            },
            # Loaded by the page itself (clusters.views.eureka): rendering never waits for Eureka.
            "show_eureka": bool(ref.environment.cluster.eureka_url)
            or bool(state["config"]["request"].get("eureka_enabled")),
            "i18n": {
                "noPods": _("No pods."),
                "noEvents": _("No events."),
                "delete": _("Delete"),
                "terminal": _("Terminal"),
                "confirmDelete": _("Delete pod {pod}?"),
                "live": _("live"),
                "connecting": _("connecting…"),
                "closed": _("disconnected, retrying…"),
                "ready": _("{ready}/{replicas} ready · rollout {state}"),
                "rolloutStates": {
                    "complete": pgettext("rollout state", "complete"),
                    "progressing": pgettext("rollout state", "in progress"),
                    "failed": pgettext("rollout state", "failed"),
                    "timed_out": pgettext("rollout state", "timed out"),
                },
                "noDeployment": _("No Deployment."),
                "following": _("Following {pod}…"),
                "paused": _("Paused; new lines are kept until you resume."),
                "resume": _("Resume"),
                "pause": _("Pause"),
                "ended": _("The log stream ended."),
                "nodePort": _("node port"),
                "noWarnings": _("No warnings."),
                "exit": _("%(reason)s (exit %(code)s)") % {"reason": "{reason}", "code": "{code}"},
                "lastExit": _("last exit %(code)s") % {"code": "{code}"},
                "restartedOne": ngettext("restarted %(n)s time", "restarted %(n)s times", 1) % {"n": "{n}"},
                "restartedMany": ngettext("restarted %(n)s time", "restarted %(n)s times", 2) % {"n": "{n}"},
                "cpuTarget": _("target %(target)s%%") % {"target": "{target}"},
            },
        },
    )


def _monitoring() -> dict:
    """The panels as placeholders: their series are fetched by the browser (static/js/monitoring.js), so
    rendering the page never waits for Prometheus."""
    return {
        "enabled": monitoring_selectors.monitoring_enabled(),
        "panels": monitoring_selectors.panels_list(),
        "i18n": {
            "loading": _("Loading…"),
            "noData": _("No data in this range."),
            "failed": _("Could not load this panel: {error}"),
            "live": _("live, every 15 s"),
            "paused": _("paused while the tab is hidden"),
            "fixed": _("fixed range (choose a range to follow live again)"),
            "markers": _("Releases in this range"),
            "cores": _("cores"),
        },
    }


def _operate(request, name: str, environment: str, run):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    ref = selectors.environment_get(
        user=request.user, name=name, environment=environment, action=selectors.operate_action(environment)
    )
    try:
        text = run(ref)
    except ValidationError as exc:
        return _result(request, _error_text(exc), ok=False, status=400)
    except IntegrationError as exc:
        return _result(request, _("The cluster refused: %(e)s") % {"e": exc}, ok=False, status=502)
    return _result(request, text, ok=True)


@login_required
@require_POST
def environment_teardown(request, name: str, environment: str):
    ref = selectors.environment_get(user=request.user, name=name, environment=environment)
    try:
        deleted = services.environment_teardown(
            actor=request.user, ref=ref, remote_addr=client_address(request)
        )
    except IntegrationError as exc:
        messages.error(request, _("The cluster refused: %(e)s") % {"e": exc})
        return redirect("environment-page", name=name, environment=environment)
    except StateConflict as exc:
        messages.error(request, str(exc))
        return redirect("environment-page", name=name, environment=environment)
    messages.success(
        request,
        _("%(project)s is no longer in %(environment)s; deleted: %(objects)s.")
        % {
            "project": ref.project.name,
            "environment": ref.environment.get_environment_display(),
            "objects": ", ".join(deleted) or "—",
        },
    )
    return redirect(f"{reverse('project-detail', args=[name])}?tab=environments")


@login_required
def environment_restart(request, name: str, environment: str):
    def run(ref):
        stamp = services.environment_restart(actor=request.user, ref=ref, remote_addr=client_address(request))
        return _("Restart requested at %(at)s; pods are replaced one by one.") % {"at": stamp}

    return _operate(request, name, environment, run)


@login_required
def environment_scale(request, name: str, environment: str):
    def run(ref):
        raw = request.POST.get("replicas", "").strip()
        try:
            replicas = int(raw)
        except ValueError:
            raise ValidationError(_("Enter a whole number of replicas.")) from None
        services.environment_scale(
            actor=request.user, ref=ref, replicas=replicas, remote_addr=client_address(request)
        )
        return _("Scaled to %(n)s replicas.") % {"n": replicas}

    return _operate(request, name, environment, run)


@login_required
def environment_delete_pod(request, name: str, environment: str, pod: str):
    def run(ref):
        services.environment_delete_pod(
            actor=request.user, ref=ref, pod=pod, remote_addr=client_address(request)
        )
        return _("Pod %(pod)s deleted; its ReplicaSet starts a replacement.") % {"pod": pod}

    return _operate(request, name, environment, run)


@login_required
def environment_config(request, name: str, environment: str):
    action = Action.EDIT_CONFIG if request.method == "POST" else Action.VIEW
    ref = selectors.environment_get(user=request.user, name=name, environment=environment, action=action)
    can_edit = Action.EDIT_CONFIG in ref.actions
    config = selectors.config_summary(ref)
    knobs = {k: v for k, v in manifests.OVERRIDABLE.items() if ref.project.language in v.languages}
    data = request.POST if request.method == "POST" else None
    initial = {**EnvironmentConfigForm.initial_from_request(config["request"]), "version": config["version"]}
    form = EnvironmentConfigForm(data, initial=initial, read_only=not can_edit)
    overrides_form = OverridesForm(data, knobs=knobs, initial=config["overrides"], prefix="knob")
    if not can_edit:
        for field in overrides_form.fields.values():
            field.disabled = True
    context = {"ref": ref, "project": ref.project, "form": form, "overrides_form": overrides_form}
    context["secret_env_names"] = config["request"].get("secret_env_names") or []
    context.update(can_edit=can_edit, plan=None, error="")
    context["active_change"] = selectors.config_change_active(ref)
    context["recent_changes"] = selectors.config_changes_list(ref, limit=5)
    status = 200
    if request.method == "POST":
        if form.is_valid() and overrides_form.is_valid():
            edit = {
                "actor": request.user,
                "ref": ref,
                "request": form.request_data(),
                "overrides": overrides_form.overrides(),
                "secret_env_vars": form.secret_env_changes(),
                "version": form.cleaned_data["version"],
            }
            try:
                if request.POST.get("step") == "apply":
                    _plan, change = config_changes.config_change_create(
                        remote_addr=client_address(request), **edit
                    )
                    if change is None:
                        messages.info(request, _("Nothing changed."))
                        return redirect("environment-page", name=name, environment=environment)
                    messages.success(
                        request,
                        _("Configuration change #%(id)s queued; its progress is shown live below.")
                        % {"id": change.pk},
                    )
                    return redirect(
                        "environment-config-change", name=name, environment=environment, pk=change.pk
                    )
                context["plan"] = services.config_plan(**edit)
            except (ValidationError, StateConflict) as exc:
                add_service_errors(form, exc)
                status = 409 if isinstance(exc, StateConflict) else 400
            except IntegrationError as exc:
                context["error"] = _("The cluster could not be reached: %(e)s") % {"e": exc}
                status = 502
        else:
            status = 400
    return render(request, "clusters/environment/config.html", context, status=status)


def _int_arg(request, key: str, default, *, maximum: int):
    raw = request.GET.get(key, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(_("%(key)s must be a whole number.") % {"key": key}) from None
    if value < 0:
        raise ValidationError(_("%(key)s must not be negative.") % {"key": key})
    return min(value, maximum)


@login_required
@require_safe
def environment_logs_download(request, name: str, environment: str, pod: str):
    ref = selectors.environment_get(user=request.user, name=name, environment=environment)
    try:
        tail = _int_arg(request, "tail", DOWNLOAD_TAIL, maximum=MAX_TAIL)
        text = services.pod_logs(
            actor=request.user,
            ref=ref,
            pod=pod,
            container=request.GET.get("container", ""),
            tail=tail,
            previous=request.GET.get("previous") in ("1", "true", "on"),
        )
    except ValidationError as exc:
        return HttpResponse(_error_text(exc), status=400, content_type="text/plain; charset=utf-8")
    except IntegrationError as exc:
        return HttpResponse(str(exc), status=502, content_type="text/plain; charset=utf-8")
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{pod}.log"'
    return response


@login_required
@require_safe
def config_change_list(request, name: str, environment: str):
    ref = selectors.environment_get(user=request.user, name=name, environment=environment)
    return render(
        request,
        "clusters/environment/config_changes.html",
        {"ref": ref, "project": ref.project, "changes": selectors.config_changes_list(ref)},
    )


@login_required
@require_safe
def config_change_detail(request, name: str, environment: str, pk: int):
    ref = selectors.environment_get(user=request.user, name=name, environment=environment)
    change = selectors.config_change_get(ref, pk)
    stream = project_stream(ref.project.pk)
    context = {
        "ref": ref,
        "project": ref.project,
        "change": change,
        "Status": ConfigChangeStatus,
        "stream": stream,
        "stream_seq": current_seq(stream),
    }
    # The live panel re-fetches only its status part when an event of this change arrives.
    template = "clusters/environment/_config_change_status.html" if request.htmx else None
    return render(request, template or "clusters/environment/config_change.html", context)
