"""The API twins of the project alerts page: alerts (list, one, acknowledge, silence) and the project's
silences in Alertmanager (list, expire). Members read; owners and ops act (Action.EDIT_PROJECT)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from alerting import selectors
from alerting.choices import AlertStatus
from alerting.models import Alert, AlertTransition
from alerting.services import alerts as services
from opsportal.http import client_address
from projects.access import Action, OpsOnly, get_project


class AlertTransitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertTransition
        fields = ["status", "at", "recorded_at"]
        read_only_fields = fields


class AlertSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name", default=None, read_only=True)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", default=None, read_only=True)
    labels = serializers.DictField(child=serializers.CharField(), read_only=True)
    annotations = serializers.DictField(child=serializers.CharField(), read_only=True)
    # Alertmanager's generatorURL, blank when the sender gave none: not always a URL.
    generator_url = serializers.CharField(read_only=True)

    class Meta:
        model = Alert
        fields = [
            "id",
            "fingerprint",
            "alertname",
            "status",
            "severity",
            "project",
            "environment",
            "starts_at",
            "ends_at",
            "labels",
            "annotations",
            "generator_url",
            "acknowledged_by",
            "acknowledged_at",
            "received_at",
            "updated_at",
        ]
        read_only_fields = fields


class AlertDetailSerializer(AlertSerializer):
    transitions = AlertTransitionSerializer(many=True, read_only=True)

    class Meta(AlertSerializer.Meta):
        fields = [*AlertSerializer.Meta.fields, "transitions"]
        read_only_fields = fields


class SilenceMatcherSerializer(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.CharField(allow_blank=True)
    is_regex = serializers.BooleanField(source="isRegex")
    is_equal = serializers.BooleanField(source="isEqual", default=True)


class SilenceSerializer(serializers.Serializer):
    """A silence as Alertmanager keeps it."""

    id = serializers.CharField()
    state = serializers.ChoiceField(choices=["active", "pending", "expired"], source="status.state")
    matchers = SilenceMatcherSerializer(many=True)
    starts_at = serializers.DateTimeField(source="startsAt")
    ends_at = serializers.DateTimeField(source="endsAt")
    created_by = serializers.CharField(source="createdBy")
    comment = serializers.CharField()


class SilenceCreateSerializer(serializers.Serializer):
    minutes = serializers.IntegerField(
        min_value=1,
        max_value=settings.ALERT_SILENCE_MAX_MINUTES,
        help_text="How long the silence lasts, from now.",
    )
    comment = serializers.CharField(max_length=500, help_text="Why the alert is silenced (required).")


def _project_alert(request, name: str, pk: int, action: Action = Action.VIEW) -> Alert:
    project = get_project(request.user, name=name, action=action)
    return selectors.alert_get(request.user, pk=pk, project=project, action=action)


class _AlertListView(generics.ListAPIView):
    """A list of alerts filtered by the optional ``status`` query parameter."""

    serializer_class = AlertSerializer

    def wanted_status(self) -> str | None:
        wanted = self.request.query_params.get("status")
        return wanted if wanted in AlertStatus.values else None


_STATUS_FILTER = OpenApiParameter(
    "status", str, enum=AlertStatus.values, description="Only alerts in this status."
)


@extend_schema_view(
    get=extend_schema(parameters=[_STATUS_FILTER], summary="A project's alerts, newest first")
)
class ProjectAlertsView(_AlertListView):
    def get_queryset(self):
        project = get_project(self.request.user, name=self.kwargs["name"], action=Action.VIEW)
        return selectors.alerts_for_project(project=project, status=self.wanted_status())


@extend_schema_view(
    get=extend_schema(
        parameters=[_STATUS_FILTER], summary="Portal-wide alerts (no known project), newest first (ops)"
    )
)
class PortalAlertsView(OpsOnly, _AlertListView):
    def get_queryset(self):
        return selectors.portal_wide_alerts(status=self.wanted_status())


class AlertDetailView(APIView):
    @extend_schema(responses=AlertDetailSerializer, summary="One alert with its firing → resolved history")
    def get(self, request, name: str, pk: int):
        return Response(AlertDetailSerializer(_project_alert(request, name, pk)).data)


class AlertAcknowledgeView(APIView):
    state_conflicts = True

    @extend_schema(
        request=None,
        responses=AlertDetailSerializer,
        summary="Acknowledge a firing alert (owner or ops); recorded in the audit log",
    )
    def post(self, request, name: str, pk: int):
        alert = _project_alert(request, name, pk, Action.EDIT_PROJECT)
        services.alert_acknowledge(actor=request.user, alert=alert, remote_addr=client_address(request))
        return Response(AlertDetailSerializer(_project_alert(request, name, pk)).data)


class AlertSilenceView(APIView):
    remote_errors = True

    @extend_schema(
        request=SilenceCreateSerializer,
        responses={201: SilenceSerializer},
        summary="Silence an alert in Alertmanager for N minutes (owner or ops); audited",
        description=(
            "Matches the alert's alertname, project, env and service labels; createdBy is your username."
        ),
    )
    def post(self, request, name: str, pk: int):
        alert = _project_alert(request, name, pk, Action.EDIT_PROJECT)
        data = SilenceCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        silence = services.silence_create(
            actor=request.user, alert=alert, remote_addr=client_address(request), **data.validated_data
        )
        return Response(SilenceSerializer(silence).data, status=status.HTTP_201_CREATED)


class ProjectSilencesView(APIView):
    remote_errors = True

    @extend_schema(
        responses=SilenceSerializer(many=True),
        summary="The project's active and pending silences in Alertmanager",
    )
    def get(self, request, name: str):
        project = get_project(request.user, name=name, action=Action.VIEW)
        return Response(SilenceSerializer(services.silences_for_project(project=project), many=True).data)


class SilenceDetailView(APIView):
    remote_errors = True
    state_conflicts = True

    @extend_schema(request=None, responses={204: None}, summary="Expire a silence (owner or ops); audited")
    def delete(self, request, name: str, silence_id):
        project = get_project(request.user, name=name, action=Action.EDIT_PROJECT)
        services.silence_expire(
            actor=request.user,
            project=project,
            silence_id=str(silence_id),
            remote_addr=client_address(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
