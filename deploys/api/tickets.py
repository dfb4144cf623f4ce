from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.api.workload import secret_env_vars_field, workload_request_field
from deploys import preview, selectors, services
from deploys.choices import TicketStatus
from deploys.models import OnboardingTicket
from opsportal.http import client_address
from opsportal.versions import if_match_version
from projects.access import Action, get_project
from projects.choices import Environment


class TicketSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name", read_only=True)
    secret_env_names = serializers.ListField(
        child=serializers.CharField(), source="request.secret_env_names", default=list, read_only=True
    )
    cluster = serializers.CharField(source="cluster.name", default=None, read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    reviewed_by = serializers.CharField(source="reviewed_by.username", default=None, read_only=True)
    version = serializers.SerializerMethodField(
        help_text="The version of request and overrides (the ETag of GET); send it back with an edit."
    )

    class Meta:
        model = OnboardingTicket
        fields = [
            "id",
            "project",
            "environment",
            "status",
            "request",
            "secret_env_names",
            "overrides",
            "cluster",
            "created_by",
            "reviewed_by",
            "reviewed_at",
            "rejection_reason",
            "attempts",
            "progress",
            "error",
            "error_causes",
            "live_objects",
            "started_at",
            "finished_at",
            "created_at",
            "updated_at",
            "version",
        ]
        read_only_fields = fields

    def get_version(self, ticket: OnboardingTicket) -> str:
        return selectors.ticket_version(ticket)


class TicketCreateSerializer(serializers.Serializer):
    environment = serializers.ChoiceField(choices=Environment.choices)
    request = workload_request_field(help_text="The workload's settings.")
    secret_env_vars = secret_env_vars_field()
    submit = serializers.BooleanField(default=False, help_text="Submit for approval right away.")


class TicketUpdateSerializer(serializers.Serializer):
    request = workload_request_field(required=False, help_text="Replaces the whole request when given.")
    overrides = serializers.DictField(required=False, help_text="Ops only: guardrail knobs and their values.")
    secret_env_vars = secret_env_vars_field()
    version = serializers.CharField(
        required=False,
        max_length=64,
        help_text=(
            "The ticket version the edit was made on (GET), or send it as If-Match. When given, a stale "
            "version is refused with 409 naming what changed. Optional because a PATCH that sends only "
            "some fields cannot revert the others; the page, which posts every field, always sends it."
        ),
    )


class ApproveSerializer(serializers.Serializer):
    cluster = serializers.IntegerField(required=False, help_text="Cluster id; optional when only one fits.")


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


def _ticket(request, name: str, pk: int, action: Action = Action.VIEW) -> OnboardingTicket:
    project = get_project(request.user, name=name, action=action)
    return get_object_or_404(selectors.tickets_for_project(project=project), pk=pk)


class ProjectTicketsView(APIView):
    state_conflicts = True

    @extend_schema(responses=TicketSerializer(many=True), summary="A project's onboarding tickets")
    def get(self, request, name: str):
        project = get_project(request.user, name=name, action=Action.VIEW)
        return Response(TicketSerializer(selectors.tickets_for_project(project=project), many=True).data)

    @extend_schema(
        request=TicketCreateSerializer, responses={201: TicketSerializer}, summary="File an onboarding ticket"
    )
    def post(self, request, name: str):
        # The right before the input: a member who may not file tickets hears 403, not what to fix.
        project = get_project(request.user, name=name, action=Action.FILE_TICKET)
        data = TicketCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket = services.ticket_create(
            actor=request.user, project=project, remote_addr=client_address(request), **data.validated_data
        )
        return Response(TicketSerializer(ticket).data, status=status.HTTP_201_CREATED)


class TicketDetailView(APIView):
    state_conflicts = True

    @extend_schema(responses=TicketSerializer, summary="One onboarding ticket")
    def get(self, request, name: str, pk: int):
        data = TicketSerializer(_ticket(request, name, pk)).data
        return Response(data, headers={"ETag": f'"{data["version"]}"'})

    @extend_schema(
        request=TicketUpdateSerializer,
        responses=TicketSerializer,
        summary="Edit a ticket before approval (requester while draft, ops until approval)",
    )
    def patch(self, request, name: str, pk: int):
        ticket = _ticket(request, name, pk)
        data = TicketUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        ticket = services.ticket_update(
            actor=request.user,
            ticket_id=ticket.pk,
            version=fields.pop("version", None) or if_match_version(request),
            remote_addr=client_address(request),
            **fields,
        )
        return Response(TicketSerializer(ticket).data)


class _TicketActionView(APIView):
    state_conflicts = True

    serializer_class = None
    # The right checked before the input is read (the service checks it again, with the ticket's state).
    required_action = Action.VIEW

    def perform(self, request, ticket: OnboardingTicket, data: dict) -> OnboardingTicket:
        raise NotImplementedError

    def post(self, request, name: str, pk: int):
        ticket = _ticket(request, name, pk, self.required_action)
        data = {}
        if self.serializer_class is not None:
            serializer = self.serializer_class(data=request.data)
            serializer.is_valid(raise_exception=True)
            data = serializer.validated_data
        ticket = self.perform(request, ticket, data)
        return Response(TicketSerializer(ticket).data)


@extend_schema(request=None, responses=TicketSerializer, summary="Submit a draft ticket for approval")
class TicketSubmitView(_TicketActionView):
    def perform(self, request, ticket, data):
        return services.ticket_submit(
            actor=request.user, ticket_id=ticket.pk, remote_addr=client_address(request)
        )


@extend_schema(request=None, responses=TicketSerializer, summary="Take a submitted ticket back to draft")
class TicketWithdrawView(_TicketActionView):
    def perform(self, request, ticket, data):
        return services.ticket_withdraw(
            actor=request.user, ticket_id=ticket.pk, remote_addr=client_address(request)
        )


@extend_schema(
    request=ApproveSerializer,
    responses=TicketSerializer,
    summary="Approve (or retry a failed) ticket and provision it (ops)",
)
class TicketApproveView(_TicketActionView):
    serializer_class = ApproveSerializer
    required_action = Action.APPROVE_TICKET

    def perform(self, request, ticket, data):
        return services.ticket_approve(
            actor=request.user,
            ticket_id=ticket.pk,
            cluster_id=data.get("cluster"),
            remote_addr=client_address(request),
        )


@extend_schema(
    request=RejectSerializer, responses=TicketSerializer, summary="Reject a ticket with a reason (ops)"
)
class TicketRejectView(_TicketActionView):
    serializer_class = RejectSerializer
    required_action = Action.APPROVE_TICKET

    def perform(self, request, ticket, data):
        return services.ticket_reject(
            actor=request.user,
            ticket_id=ticket.pk,
            reason=data["reason"],
            remote_addr=client_address(request),
        )


class PreviewObjectSerializer(serializers.Serializer):
    kind = serializers.CharField()
    name = serializers.CharField()
    yaml = serializers.CharField()
    exists = serializers.BooleanField()
    diff = serializers.CharField()


class GuardrailSerializer(serializers.Serializer):
    code = serializers.CharField()
    level = serializers.CharField()
    message = serializers.CharField()
    overridden = serializers.BooleanField()


class WindowPartSerializer(serializers.Serializer):
    code = serializers.CharField(
        help_text="eureka_response_cache, registry_refresh, loadbalancer_cache, margin; or endpoints."
    )
    label = serializers.CharField()
    seconds = serializers.IntegerField()


class StopBudgetSerializer(serializers.Serializer):
    parts = WindowPartSerializer(many=True, help_text="What the stale window is made of.")
    stale_window = serializers.IntegerField(
        help_text="Seconds callers may still send requests to a pod that leaves (the sum of the parts)."
    )
    sleep = serializers.IntegerField(help_text="The preStop wait: the stale window unless ops overrode it.")
    sleep_short = serializers.BooleanField(help_text="The wait is shorter than the stale window.")
    hook_timeout = serializers.IntegerField(
        help_text="The de-registration call's timeout (0 without Eureka)."
    )
    shutdown = serializers.IntegerField(help_text="Seconds the application gets after SIGTERM.")
    grace = serializers.IntegerField(
        help_text="terminationGracePeriodSeconds: hook timeout + wait + shutdown."
    )
    deregister_path = serializers.CharField(
        help_text="The endpoint the hook POSTs OUT_OF_SERVICE to; empty without Eureka."
    )


class PreviewSerializer(serializers.Serializer):
    objects = PreviewObjectSerializer(many=True)
    guardrails = GuardrailSerializer(many=True)
    error = serializers.CharField()
    compare_error = serializers.CharField()
    cluster = serializers.CharField(source="cluster.name", default=None)
    stop_budget = StopBudgetSerializer(allow_null=True, help_text="Null when the request does not render.")
    log_env = serializers.DictField(
        child=serializers.CharField(),
        help_text="LOG_REDIS_URL (its password masked) and LOG_REDIS_KEY when the service logs to the "
        "cluster's log pipeline; empty otherwise.",
    )


class TicketPreviewView(APIView):
    @extend_schema(
        responses=PreviewSerializer, summary="Rendered objects, guardrails and a diff against live"
    )
    def get(self, request, name: str, pk: int):
        return Response(PreviewSerializer(preview.ticket_preview(ticket=_ticket(request, name, pk))).data)


@extend_schema(parameters=[OpenApiParameter("status", str, enum=TicketStatus.values)])
class TicketQueueView(generics.ListAPIView):
    serializer_class = TicketSerializer

    def get_queryset(self):
        status_filter = self.request.query_params.get("status", "")
        return selectors.tickets_visible(
            user=self.request.user, status=status_filter if status_filter in TicketStatus.values else ""
        )
