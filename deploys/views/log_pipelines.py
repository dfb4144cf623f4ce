"""The Log pipelines pages (ops only; everyone else 404): the clusters and their pipelines, and per
cluster the settings form, the Deploy button, the rollout streaming live, the proxy's replicas, pods
and throughput (a partial loaded after the page, so the page never waits for the cluster)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from clusters.models.logging import DEFAULT_NAMESPACE
from clusters.selectors.log_pipelines import (
    pipeline_cluster_get,
    pipeline_clusters,
    proxy_status,
    proxy_throughput,
)
from clusters.services.log_pipelines import AUDITED_FIELDS, log_pipeline_save
from deploys.choices import RolloutStatus
from deploys.forms.log_pipelines import PipelineForm
from deploys.models import LogProxyRollout
from deploys.services.log_proxy import log_proxy_deploy
from observability.events import cluster_stream, current_seq
from opsportal.errors import StateConflict
from opsportal.forms import call_service, service_error_message
from opsportal.http import client_address
from projects.access import require_ops

STEPS = (RolloutStatus.TAGGING, RolloutStatus.BUILDING, RolloutStatus.APPLYING, RolloutStatus.DEPLOYED)
_ORDER = [RolloutStatus.QUEUED, RolloutStatus.TAGGING, RolloutStatus.BUILDING, RolloutStatus.BUILT]
_ORDER += [RolloutStatus.APPLYING, RolloutStatus.DEPLOYED]


def _steps(rollout: LogProxyRollout | None) -> list[dict]:
    """tag → build → apply → deployed, each done, current, failed or to come."""
    if rollout is None:
        return []
    failed = rollout.status == RolloutStatus.FAILED
    # A failed rollout failed in the step after the last one it finished (its audit trail says which).
    reached = _reached(rollout)
    steps = []
    for step in STEPS:
        index = _ORDER.index(step)
        if index < reached or (step == RolloutStatus.DEPLOYED and rollout.status == step):
            state = "done"
        elif index == reached or (step == RolloutStatus.BUILDING and rollout.status == RolloutStatus.BUILT):
            state = "failed" if failed else "current"
        else:
            state = "todo"
        steps.append({"status": step, "label": RolloutStatus(step).label, "state": state})
    return steps


def _reached(rollout: LogProxyRollout) -> int:
    if rollout.status != RolloutStatus.FAILED:
        return _ORDER.index(rollout.status)
    if rollout.image_digest:
        return _ORDER.index(RolloutStatus.APPLYING)
    if rollout.jenkins_job and (rollout.jenkins_queue_id or rollout.jenkins_build):
        return _ORDER.index(RolloutStatus.BUILDING)
    return _ORDER.index(RolloutStatus.BUILDING) if rollout.commit_sha else _ORDER.index(RolloutStatus.TAGGING)


@login_required
@require_safe
def pipeline_list(request):
    require_ops(request.user)
    rows = []
    for cluster, pipeline in pipeline_clusters(user=request.user):
        last = pipeline.rollouts.first() if pipeline is not None else None
        rows.append({"cluster": cluster, "pipeline": pipeline, "last": last})
    return render(request, "deploys/log_pipeline_list.html", {"rows": rows})


def _page_context(request, cluster, pipeline, form) -> dict:
    rollouts = list(pipeline.rollouts.all()[:10]) if pipeline is not None else []
    rollout = rollouts[0] if rollouts else None
    stream = cluster_stream(cluster.pk)
    return {
        "cluster": cluster,
        "pipeline": pipeline,
        "form": form,
        "rollout": rollout,
        "rollouts": rollouts,
        "steps": _steps(rollout),
        "Status": RolloutStatus,
        "stream": stream,
        "stream_seq": current_seq(stream),
    }


@login_required
def pipeline_page(request, pk: int):
    cluster, pipeline = pipeline_cluster_get(user=request.user, pk=pk)
    if request.htmx and request.method == "GET":
        context = _page_context(request, cluster, pipeline, None)
        return render(request, "deploys/_log_proxy_rollout.html", context)
    initial = {"namespace": DEFAULT_NAMESPACE}
    if pipeline is not None:
        initial = {name: getattr(pipeline, name) for name in AUDITED_FIELDS}
    form = PipelineForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if form.is_valid():
            saved = call_service(
                form,
                log_pipeline_save,
                actor=request.user,
                cluster=cluster,
                remote_addr=client_address(request),
                **form.cleaned_data,
            )
            if saved is not None:
                messages.success(request, _("The log pipeline of %(c)s is saved.") % {"c": cluster.name})
                return redirect("log-pipeline", pk=cluster.pk)
    status = 400 if form.is_bound else 200
    return render(
        request, "deploys/log_pipeline.html", _page_context(request, cluster, pipeline, form), status=status
    )


@login_required
@require_safe
def pipeline_status(request, pk: int):
    """The replicas, pods and throughput section (a partial the page loads and refreshes)."""
    cluster, pipeline = pipeline_cluster_get(user=request.user, pk=pk)
    context = {"cluster": cluster, "pipeline": pipeline}
    if pipeline is not None:
        context |= {"proxy": proxy_status(pipeline), "throughput": proxy_throughput(pipeline)}
    return render(request, "deploys/_log_proxy_status.html", context)


@login_required
@require_POST
def pipeline_deploy(request, pk: int):
    cluster, _pipeline = pipeline_cluster_get(user=request.user, pk=pk)
    try:
        log_proxy_deploy(actor=request.user, cluster=cluster, remote_addr=client_address(request))
    except (ValidationError, StateConflict) as exc:
        messages.error(request, service_error_message(exc))
    else:
        messages.success(
            request, _("The log proxy is being built and deployed to %(c)s.") % {"c": cluster.name}
        )
    return redirect("log-pipeline", pk=cluster.pk)
