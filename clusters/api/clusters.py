from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.models import Cluster
from clusters.selectors import clusters as selectors
from clusters.services import clusters as services
from opsportal.http import client_address
from projects.access import OpsOnly


class ClusterSerializer(serializers.ModelSerializer):
    credential = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=True,
        style={"base_template": "textarea.html"},
        help_text="Bearer token or kubeconfig YAML (embedded certificates). Write-only; blank keeps it.",
    )
    api_url = serializers.CharField(
        required=False, allow_blank=True, max_length=255, help_text="Empty with a kubeconfig: its server."
    )

    class Meta:
        model = Cluster
        fields = [
            "id",
            "name",
            "environment",
            "api_url",
            "ca_certificate",
            "auth_type",
            "credential",
            "verify_tls",
            "namespace_template",
            "monitoring",
            "eureka_url",
            "last_check_at",
            "last_check_ok",
            "last_check_message",
            "server_version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "last_check_at",
            "last_check_ok",
            "last_check_message",
            "server_version",
            "created_at",
            "updated_at",
        ]
        # Uniqueness and every other rule are checked once, by the service (full_clean).
        extra_kwargs = {"name": {"validators": []}}

    def validate(self, attrs):
        if self.instance is None and not attrs.get("credential"):
            raise serializers.ValidationError({"credential": "Paste a bearer token or a kubeconfig."})
        return attrs


@extend_schema(tags=["clusters"])
class ClusterListCreateView(OpsOnly, generics.ListCreateAPIView):
    serializer_class = ClusterSerializer

    def get_queryset(self):
        return selectors.cluster_list(user=self.request.user)

    def perform_create(self, serializer):
        serializer.instance = services.cluster_create(
            actor=self.request.user,
            remote_addr=client_address(self.request),
            **serializer.validated_data,
        )


@extend_schema(tags=["clusters"])
class ClusterDetailView(OpsOnly, generics.RetrieveUpdateAPIView):
    serializer_class = ClusterSerializer

    def get_object(self):
        return selectors.cluster_get(user=self.request.user, pk=self.kwargs["pk"])

    def perform_update(self, serializer):
        serializer.instance = services.cluster_update(
            actor=self.request.user,
            cluster=serializer.instance,
            remote_addr=client_address(self.request),
            **serializer.validated_data,
        )


class ConnectionCheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    message = serializers.CharField()
    server_version = serializers.CharField(allow_blank=True)
    user = serializers.CharField(allow_blank=True)
    next_step = serializers.CharField(allow_blank=True)
    error = serializers.CharField(allow_blank=True, help_text="Error class, e.g. Unreachable, Unauthorized")


class ClusterTestConnectionView(OpsOnly, APIView):
    @extend_schema(
        tags=["clusters"],
        request=None,
        responses={200: ConnectionCheckSerializer},
        summary="Call the cluster's apiserver now and store the outcome",
    )
    def post(self, request, pk: int):
        cluster = selectors.cluster_get(user=request.user, pk=pk)
        result = services.cluster_test_connection(
            actor=request.user, cluster=cluster, remote_addr=client_address(request)
        )
        return Response(ConnectionCheckSerializer(result).data)
