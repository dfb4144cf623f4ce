"""REST API twin of the environment page's Eureka section."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from clusters.api.environments import EnvironmentAPIView
from clusters.selectors.environments import environment_get
from clusters.selectors.eureka import eureka_instances
from clusters.services.eureka import STATUSES, environment_eureka_status_set
from opsportal.http import client_address


class EurekaInstanceSerializer(serializers.Serializer):
    instance_id = serializers.CharField()
    app = serializers.CharField()
    host_name = serializers.CharField()
    ip_addr = serializers.CharField()
    port = serializers.IntegerField(allow_null=True)
    status = serializers.CharField(help_text="UP, DOWN, STARTING, OUT_OF_SERVICE or UNKNOWN.")
    overridden_status = serializers.CharField(help_text="OUT_OF_SERVICE while overridden, else UNKNOWN.")
    out_of_service = serializers.BooleanField(help_text="Whether the OUT_OF_SERVICE override is set.")
    last_updated = serializers.DateTimeField(allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField())
    pod = serializers.CharField(
        allow_null=True, help_text="The environment's pod with this instance's address; null: none (a VM, …)."
    )


def _ref(request, kwargs):
    # Members read; the service lets only ops change a status (403 for the others, 404 for outsiders).
    return environment_get(user=request.user, name=kwargs["name"], environment=kwargs["environment"])


class EurekaInstancesView(EnvironmentAPIView):
    @extend_schema(
        tags=["environments"],
        summary="The instances Eureka knows for the environment's service, with their status and pod",
        description="enabled is false (and error says why) when the cluster has no Eureka URL; an "
        "unreachable or refusing Eureka is a 502.",
        responses=inline_serializer(
            "EurekaInstances",
            {
                "enabled": serializers.BooleanField(help_text="Whether the cluster names a Eureka server."),
                "app": serializers.CharField(help_text="The app name the service registers under."),
                "instances": EurekaInstanceSerializer(many=True),
                "error": serializers.CharField(help_text="Why nothing is listed, or empty."),
                "pods_error": serializers.CharField(help_text="Why pods could not be matched, or empty."),
            },
        ),
    )
    def get(self, request, name: str, environment: str):
        return Response(eureka_instances(_ref(request, self.kwargs), raise_errors=True))


class EurekaStatusView(EnvironmentAPIView):
    state_conflicts = True  # no Eureka configured for the cluster; the environment taken down meanwhile

    @extend_schema_serializer(component_name="EurekaStatusInput")
    class Input(serializers.Serializer):
        status = serializers.ChoiceField(
            choices=list(STATUSES),
            help_text="OUT_OF_SERVICE sets Eureka's status override; UP removes it.",
        )

    @extend_schema(
        tags=["environments"],
        summary="Take an instance out of Eureka's service, or put it back (ops; audited)",
        request=Input,
        responses=EurekaInstanceSerializer,
    )
    def post(self, request, name: str, environment: str, instance: str):
        ref = _ref(request, self.kwargs)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        shown = environment_eureka_status_set(
            actor=request.user,
            ref=ref,
            instance_id=instance,
            status=data.validated_data["status"],
            remote_addr=client_address(request),
        )
        return Response(shown)
