"""Reads for clusters. Only ops may know clusters exist: everyone else sees none and gets 404."""

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.utils.module_loading import import_string

from clusters.models import Cluster, LogPipeline
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


def cluster_log_pipeline(cluster: Cluster | None) -> LogPipeline | None:
    """The cluster's log pipeline, if ops set one up (None without a cluster)."""
    if cluster is None:
        return None
    return LogPipeline.objects.filter(cluster=cluster).first()


def log_pipeline_exists(*, environment: str) -> bool:
    """Whether any cluster of ``environment`` (test or prod) has a log pipeline."""
    return LogPipeline.objects.filter(cluster__environment=environment).exists()


def dev_cluster_status():
    """The local development cluster's phase and message (under `make run`), or None elsewhere.

    Asked through the hook named by settings.DEV_CLUSTER_STATUS, which the sandbox sets."""
    if not settings.DEV_CLUSTER_STATUS:
        return None
    return import_string(settings.DEV_CLUSTER_STATUS)()
