from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from clusters.forms.clusters import ClusterForm
from clusters.selectors import clusters as selectors
from clusters.selectors.prometheus_config import prometheus_config_managed, prometheus_config_state
from clusters.services import clusters as services
from clusters.services.clusters import AUDITED_FIELDS
from clusters.services.monitoring_config import prometheus_config_request_apply
from opsportal.errors import StateConflict
from opsportal.http import client_address
from projects.access import require_ops


def _save(form: ClusterForm, save) -> bool:
    """Run the service; its validation errors land on the form fields."""
    if not form.is_valid():
        return False
    try:
        save(form.cleaned_data)
    except ValidationError as exc:
        form.add_error(None, exc)
        return False
    return True


@login_required
@require_safe
def cluster_list(request):
    require_ops(request.user)
    return render(
        request,
        "clusters/list.html",
        {
            "clusters": selectors.cluster_list(user=request.user),
            "sandbox": selectors.dev_cluster_status(),
            "prometheus_config": prometheus_config_state() if prometheus_config_managed() else None,
        },
    )


@login_required
def prometheus_config_apply(request):
    require_ops(request.user)  # before the method check: 404 first
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        prometheus_config_request_apply(actor=request.user, remote_addr=client_address(request))
    except StateConflict as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, _("The Prometheus configuration is being applied; reload this page in a few seconds.")
        )
    return redirect("cluster-list")


@login_required
def cluster_create(request):
    require_ops(request.user)
    form = ClusterForm(request.POST or None)
    if request.method == "POST":
        created = {}

        def save(data):
            created["cluster"] = services.cluster_create(
                actor=request.user, remote_addr=client_address(request), **data
            )

        if _save(form, save):
            messages.success(request, _("Cluster %(name)s added.") % {"name": created["cluster"].name})
            return redirect("cluster-edit", pk=created["cluster"].pk)
    status = 400 if form.is_bound else 200
    return render(request, "clusters/form.html", {"form": form, "cluster": None}, status=status)


@login_required
def cluster_edit(request, pk: int):
    cluster = selectors.cluster_get(user=request.user, pk=pk)
    initial = {field: getattr(cluster, field) for field in AUDITED_FIELDS}
    initial["ca_certificate"] = cluster.ca_certificate
    form = ClusterForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST":

        def save(data):
            services.cluster_update(
                actor=request.user, cluster=cluster, remote_addr=client_address(request), **data
            )

        if _save(form, save):
            messages.success(request, _("Cluster %(name)s saved.") % {"name": form.cleaned_data["name"]})
            return redirect("cluster-edit", pk=cluster.pk)
    status = 400 if form.is_bound else 200
    return render(request, "clusters/form.html", {"form": form, "cluster": cluster}, status=status)


@login_required
def cluster_test_connection(request, pk: int):
    cluster = selectors.cluster_get(user=request.user, pk=pk)  # before the method check: 404 first
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    result = services.cluster_test_connection(
        actor=request.user, cluster=cluster, remote_addr=client_address(request)
    )
    cluster.refresh_from_db()
    return render(request, "clusters/_check_result.html", {"result": result, "cluster": cluster})
