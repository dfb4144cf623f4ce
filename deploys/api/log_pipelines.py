"""The Log pipelines API (ops only; everyone else 404): a cluster's pipeline settings, deploying the proxy,
a rollout's state, and the proxy's replicas, pods and throughput. The twins of deploys/views/log_pipelines."""

from dataclasses import asdict

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.selectors.log_pipelines import (
    pipeline_cluster_get,
    pipeline_clusters,
    proxy_status,
    proxy_throughput,
)
from clusters.services.log_pipelines import log_pipeline_save
from deploys.models import LogProxyRollout
from deploys.services.log_proxy import log_proxy_deploy
from opsportal.http import client_address
from projects.access import OpsOnly


class PipelineSerializer(serializers.Serializer):
    """A pipeline's settings. ``password`` is write-only: blank keeps the stored one; ``has_password`` says
    whether there is one."""

    cluster = serializers.IntegerField(read_only=True, source="cluster_id")
    cluster_name = serializers.CharField(read_only=True, source="cluster.name")
    kafka_bootstrap_servers = serializers.CharField(max_length=500, help_text="host:port, comma-separated")
    portal_bootstrap_servers = serializers.CharField(max_length=500, required=False, allow_blank=True)
    default_topic = serializers.CharField(max_length=249, required=False, default="app-logs")
    topic_mapping = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="pattern=topic rules, one a line or comma-separated",
    )
    namespace = serializers.CharField(max_length=63, required=False, default="opsportal-logging")
    service_address = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    min_replicas = serializers.IntegerField(required=False, default=2, min_value=1, max_value=50)
    max_replicas = serializers.IntegerField(required=False, default=6, min_value=1, max_value=50)
    kibana_url = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    password = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False, max_length=500
    )
    clear_password = serializers.BooleanField(write_only=True, required=False, default=False)
    has_password = serializers.SerializerMethodField()
    proxy_address = serializers.CharField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def get_has_password(self, pipeline) -> bool:
        return bool(pipeline.password)


class RolloutSerializer(serializers.ModelSerializer):
    cluster = serializers.IntegerField(source="pipeline.cluster_id", read_only=True)
    image = serializers.CharField(read_only=True)

    class Meta:
        model = LogProxyRollout
        fields = [
            "id",
            "cluster",
            "status",
            "version",
            "git_project",
            "branch",
            "commit_sha",
            "image",
            "jenkins_job",
            "jenkins_build",
            "applied",
            "progress",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class PipelineListItemSerializer(serializers.Serializer):
    cluster = serializers.IntegerField()
    cluster_name = serializers.CharField()
    environment = serializers.CharField()
    pipeline = PipelineSerializer(allow_null=True)
    last_rollout = RolloutSerializer(allow_null=True)


class ProxyPodSerializer(serializers.Serializer):
    name = serializers.CharField()
    phase = serializers.CharField()
    ready = serializers.BooleanField()
    restarts = serializers.IntegerField()
    reason = serializers.CharField()
    node = serializers.CharField()
    image = serializers.CharField()


class ProxyStatusSerializer(serializers.Serializer):
    deployed = serializers.BooleanField()
    desired = serializers.IntegerField()
    ready = serializers.IntegerField()
    updated = serializers.IntegerField()
    image = serializers.CharField()
    hpa = serializers.CharField()
    pods = ProxyPodSerializer(many=True)
    error = serializers.CharField(help_text="Why the cluster could not be read; empty when it was")


class ThroughputSerializer(serializers.Serializer):
    lines_in = serializers.FloatField(allow_null=True, help_text="lines/s pushed to the proxy")
    lines_out = serializers.FloatField(allow_null=True, help_text="lines/s acknowledged by Kafka")
    reason = serializers.CharField(help_text="Why there is no number; empty when there is")


class PipelineStatusSerializer(serializers.Serializer):
    proxy = ProxyStatusSerializer()
    throughput = ThroughputSerializer()


def _last_rollout(pipeline):
    return pipeline.rollouts.select_related("pipeline").first() if pipeline is not None else None


class PipelineListView(OpsOnly, APIView):
    @extend_schema(tags=["log-pipelines"], responses={200: PipelineListItemSerializer(many=True)})
    def get(self, request):
        rows = [
            {
                "cluster": cluster.pk,
                "cluster_name": cluster.name,
                "environment": cluster.environment,
                "pipeline": pipeline,
                "last_rollout": _last_rollout(pipeline),
            }
            for cluster, pipeline in pipeline_clusters(user=request.user)
        ]
        return Response(PipelineListItemSerializer(rows, many=True).data)


class PipelineDetailView(OpsOnly, APIView):
    @extend_schema(
        tags=["log-pipelines"],
        responses={200: PipelineSerializer},
        summary="A cluster's log pipeline settings",
    )
    def get(self, request, pk: int):
        _cluster, pipeline = pipeline_cluster_get(user=request.user, pk=pk)
        if pipeline is None:
            raise Http404("The cluster has no log pipeline yet.")
        return Response(PipelineSerializer(pipeline).data)

    @extend_schema(
        tags=["log-pipelines"],
        request=PipelineSerializer,
        responses={200: PipelineSerializer},
        summary="Create or replace a cluster's log pipeline settings (the password is write-only)",
    )
    def put(self, request, pk: int):
        cluster, _pipeline = pipeline_cluster_get(user=request.user, pk=pk)
        serializer = PipelineSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        pipeline = log_pipeline_save(
            actor=request.user, cluster=cluster, remote_addr=client_address(request), **data
        )
        return Response(PipelineSerializer(pipeline).data)


class PipelineDeployView(OpsOnly, APIView):
    state_conflicts = True  # one rollout at a time per pipeline: a second Deploy is a 409

    @extend_schema(
        tags=["log-pipelines"],
        request=None,
        responses={202: RolloutSerializer},
        summary="Build the proxy's image and roll it out to the cluster (one rollout at a time)",
    )
    def post(self, request, pk: int):
        cluster, _pipeline = pipeline_cluster_get(user=request.user, pk=pk)
        rollout = log_proxy_deploy(actor=request.user, cluster=cluster, remote_addr=client_address(request))
        return Response(RolloutSerializer(rollout).data, status=status.HTTP_202_ACCEPTED)


class RolloutDetailView(OpsOnly, APIView):
    @extend_schema(tags=["log-pipelines"], responses={200: RolloutSerializer}, summary="A rollout's state")
    def get(self, request, pk: int, rollout: int):
        cluster, _pipeline = pipeline_cluster_get(user=request.user, pk=pk)
        run = get_object_or_404(LogProxyRollout.objects.filter(pipeline__cluster=cluster), pk=rollout)
        return Response(RolloutSerializer(run).data)


class PipelineStatusView(OpsOnly, APIView):
    @extend_schema(
        tags=["log-pipelines"],
        responses={200: PipelineStatusSerializer},
        summary="The proxy's replicas and pods (from the cluster) and throughput (from Prometheus)",
    )
    def get(self, request, pk: int):
        _cluster, pipeline = pipeline_cluster_get(user=request.user, pk=pk)
        if pipeline is None:
            raise Http404("The cluster has no log pipeline yet.")
        body = {"proxy": asdict(proxy_status(pipeline)), "throughput": asdict(proxy_throughput(pipeline))}
        return Response(PipelineStatusSerializer(body).data)
