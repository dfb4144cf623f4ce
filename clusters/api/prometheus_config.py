from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.models import PrometheusConfigState
from clusters.selectors.prometheus_config import prometheus_config_managed, prometheus_config_state
from clusters.services.monitoring_config import prometheus_config_request_apply
from opsportal.http import client_address
from projects.access import OpsOnly


class PrometheusConfigStateSerializer(serializers.ModelSerializer):
    managed = serializers.SerializerMethodField(
        help_text="False when PROMETHEUS_CONFIG_FILE is unset: the portal leaves Prometheus' file alone."
    )
    next_step = serializers.CharField(read_only=True, help_text="What ops should do after a failure.")

    class Meta:
        model = PrometheusConfigState
        fields = [
            "managed",
            "status",
            "error",
            "config_sha256",
            "applied_at",
            "attempted_at",
            "reason",
            "next_step",
        ]
        read_only_fields = fields

    def get_managed(self, obj) -> bool:
        return prometheus_config_managed()


class PrometheusConfigView(OpsOnly, APIView):
    @extend_schema(
        tags=["clusters"],
        responses={200: PrometheusConfigStateSerializer},
        summary="The outcome of the last apply of the portal-managed Prometheus configuration",
    )
    def get(self, request):
        return Response(PrometheusConfigStateSerializer(prometheus_config_state()).data)


class PrometheusConfigApplyView(OpsOnly, APIView):
    state_conflicts = True  # 409 when the portal does not manage the file

    @extend_schema(
        tags=["clusters"],
        request=None,
        responses={202: PrometheusConfigStateSerializer},
        summary="Render, check (promtool) and reload the Prometheus configuration again, in the background",
    )
    def post(self, request):
        state = prometheus_config_request_apply(actor=request.user, remote_addr=client_address(request))
        return Response(PrometheusConfigStateSerializer(state).data, status=status.HTTP_202_ACCEPTED)
