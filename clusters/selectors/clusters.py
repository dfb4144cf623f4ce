"""Reads for clusters. Only ops may know clusters exist: everyone else sees none and gets 404."""

from django.db.models import QuerySet
from django.http import Http404

from clusters.models import Cluster
from projects.access import AnyUser, is_ops


def cluster_list(*, user: AnyUser) -> QuerySet[Cluster]:
    if not is_ops(user) or not user.is_active:
        return Cluster.objects.none()
    return Cluster.objects.all()


def cluster_get(*, user: AnyUser, pk: int) -> Cluster:
    """The cluster for an ops user; Http404 for anyone else, whether or not it exists."""
    cluster = cluster_list(user=user).filter(pk=pk).first()
    if cluster is None:
        raise Http404("No such cluster.")
    return cluster


def check_ops(user: AnyUser) -> None:
    """Http404 for a non-ops user on any cluster page (not even the list may be seen)."""
    if not is_ops(user) or not user.is_active:
        raise Http404("Not found.")


def sandbox_cluster_state():
    """The local sandbox control plane's phase and progress under `make run`, or None elsewhere."""
    from django.conf import settings

    if not settings.SANDBOX_KUBE_DIR:
        return None
    from pathlib import Path

    from sandbox.kube.cluster import read_state

    return read_state(Path(settings.SANDBOX_KUBE_DIR))
