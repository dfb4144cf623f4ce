"""API plumbing shared by every app: the one exception handler, the one error shape in the schema, and
the /api/me/ endpoint.

Every API error answers ``{"detail": "<a sentence>", "errors": {"<field>": ["..."], ...}}``. ``errors`` is
empty unless the input was at fault; errors not about one field are under ``non_field_errors``.
"""

from django.core.exceptions import NON_FIELD_ERRORS, FieldDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from integrations.errors import IntegrationError
from observability import services as observability_services
from opsportal import cockpit
from opsportal.errors import StateConflict
from projects.access import is_ops, is_qa, visible_projects

NON_FIELD_KEY = api_settings.NON_FIELD_ERRORS_KEY  # "non_field_errors"


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's current state does not allow this."
    default_code = "conflict"


class RemoteError(exceptions.APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = "The system behind this action could not be reached."
    default_code = "remote_error"


class ErrorSerializer(serializers.Serializer):
    """The body of every API error."""

    detail = serializers.CharField(help_text="What went wrong, in a sentence for people.")
    errors = serializers.DictField(
        child=serializers.JSONField(),
        help_text=(
            f"Input errors by field, each a list of messages (an object for nested input); `{NON_FIELD_KEY}` "
            "holds those not about one field. Empty unless the input was at fault."
        ),
    )


def _django_errors(exc: DjangoValidationError) -> dict:
    if not hasattr(exc, "error_dict"):
        return {NON_FIELD_KEY: exc.messages}
    return {NON_FIELD_KEY if key == NON_FIELD_ERRORS else key: msgs for key, msgs in exc.message_dict.items()}


def _as_api_exception(exc):
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(_django_errors(exc))
    if isinstance(exc, Http404):
        return exceptions.NotFound(str(exc) or None)
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied(str(exc) or None)
    if isinstance(exc, StateConflict):
        return ConflictError(str(exc))
    if isinstance(exc, IntegrationError):
        return RemoteError(str(exc))
    return exc


def _validation_body(data) -> dict:
    errors = data if isinstance(data, dict) else {NON_FIELD_KEY: data}
    general = errors.get(NON_FIELD_KEY) or []
    detail = " ".join(str(message) for message in general) if general else "Invalid input."
    return {"detail": detail, "errors": errors}


def exception_handler(exc, context):
    """The one place API errors get their shape (see the module docstring)."""
    exc = _as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500, logged
    if isinstance(exc, exceptions.ValidationError):
        response.data = _validation_body(response.data)
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        response.data = {"detail": str(detail), "errors": {}}
    return response


class PortalAutoSchema(AutoSchema):
    """Declares the error responses an operation can give, all with the one ErrorSerializer body.

    403 wherever a permission applies (signed out, or not allowed); 404 where the path names an object
    and on paginated lists (a page past the end); 400 where there is input; 415 on writes that may carry
    a body; 409 on writes of views whose services refuse by state (a transition, a busy object, a stale
    version: ``state_conflicts = True`` on the view); 502 on views that talk to another system in the
    request (``remote_errors = True``)."""

    def _error_codes(self) -> list[str]:
        codes = []
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes.append("403")
        writes = self.method in ("POST", "PUT", "PATCH", "DELETE")
        if writes or self.get_override_parameters() or self._is_list_view():
            codes.append("400")
        if self.method in ("POST", "PUT", "PATCH"):
            # A body in a media type none of the parsers reads (or whose parser gives up on the header)
            # is DRF's 415, in the same error shape; schemathesis met it with a mangled multipart body.
            codes.append("415")
        # A page number past the end is DRF's 404 too (PageNumberPagination raises NotFound); so is
        # everything of an ops-only view (``ops_only = True``) for anyone else, even without an object.
        paginated = self.method == "GET" and self._is_list_view() and self._get_paginator()
        if "{" in self.path or paginated or getattr(self.view, "ops_only", False):
            codes.append("404")
        if writes and getattr(self.view, "state_conflicts", False):
            codes.append("409")
        if getattr(self.view, "remote_errors", False):
            codes.append("502")
        return codes

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # ``default=None`` on an output field (``source="reviewed_by.username"``) answers null when the
        # relation is empty: say so, or every such answer breaks the schema.
        if field.default is None and (field.read_only or direction == "response") and "$ref" not in schema:
            schema["nullable"] = True
        # DRF drops ``allow_blank`` from read-only model fields, so a blank-able choice (an end reason
        # while the grant runs) would be documented without the "" it answers.
        if (
            isinstance(field, serializers.ChoiceField)
            and field.read_only
            and "" not in schema.get("enum", [""])
        ):
            model = getattr(getattr(field.parent, "Meta", None), "model", None)
            try:
                blank = model is not None and model._meta.get_field(field.source).blank
            except FieldDoesNotExist:
                blank = False
            if blank:
                schema["enum"] = [*schema["enum"], ""]
        return schema

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in list(responses):
            if code[0] in "45":  # an error a view declared by hand gets the one shape too
                del responses[code]
        for code in self._error_codes():
            responses[code] = self._get_response_for_code(ErrorSerializer, code, direction=direction)
        return responses


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    is_ops = serializers.BooleanField()
    is_qa = serializers.BooleanField()
    language = serializers.CharField()
    projects = serializers.ListField(child=serializers.CharField())


class MeView(APIView):
    @extend_schema(responses=MeSerializer, summary="The signed-in user")
    def get(self, request):
        user = request.user
        data = {
            "id": user.pk,
            "username": user.get_username(),
            "is_ops": is_ops(user),
            "is_qa": is_qa(user),
            "language": getattr(request, "LANGUAGE_CODE", ""),
            "projects": list(visible_projects(user).values_list("name", flat=True)),
        }
        return Response(MeSerializer(data).data)


class WorkerPingView(APIView):
    @extend_schema(
        request=None,
        responses={202: inline_serializer("WorkerPingQueued", {"detail": serializers.CharField()})},
        summary="Ask the background worker to answer on your live event stream",
    )
    def post(self, request):
        observability_services.worker_ping(user=request.user)
        return Response({"detail": "Queued."}, status=status.HTTP_202_ACCEPTED)


# --- the project cockpit ------------------------------------------------------------------------------


class CockpitReleaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.CharField()
    status = serializers.CharField()
    status_label = serializers.CharField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField()
    confirmed = serializers.BooleanField(help_text="A tester confirmed it (test releases).")


class CockpitInFlightSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="`release`, or the kind of a rollout in progress (`rollback`, …).")
    id = serializers.IntegerField(help_text="The release's id.")
    version = serializers.CharField()
    status = serializers.CharField()
    status_label = serializers.CharField()
    created_at = serializers.DateTimeField()


class CockpitRunningSerializer(serializers.Serializer):
    release_id = serializers.IntegerField()
    version = serializers.CharField()
    since = serializers.DateTimeField(help_text="When its rollout ended.")
    kind = serializers.CharField(help_text="release, promotion or rollback")
    kind_label = serializers.CharField()
    image = serializers.CharField()


class CockpitAwaitingSerializer(serializers.Serializer):
    release_id = serializers.IntegerField()
    version = serializers.CharField()


class CockpitTicketSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    environment = serializers.CharField()
    status = serializers.CharField()
    status_label = serializers.CharField()
    created_at = serializers.DateTimeField()


class CockpitDeploymentSerializer(serializers.Serializer):
    ready = serializers.IntegerField(help_text="Pods ready.")
    desired = serializers.IntegerField(allow_null=True, help_text="Pods desired (the Deployment's replicas).")
    rollout = serializers.CharField(help_text="complete, progressing, failed or timed_out")


class CockpitHpaSerializer(serializers.Serializer):
    current = serializers.IntegerField()
    min = serializers.IntegerField()
    max = serializers.IntegerField(allow_null=True)
    cpu_current = serializers.IntegerField(allow_null=True, help_text="Average CPU utilization, %.")
    cpu_target = serializers.IntegerField(allow_null=True, help_text="Target CPU utilization, %.")


class CockpitLiveSerializer(serializers.Serializer):
    deployment = CockpitDeploymentSerializer(allow_null=True)
    hpa = CockpitHpaSerializer(allow_null=True)
    error = serializers.CharField(help_text="Why the cluster could not be read; empty when it was.")


class CockpitTrafficSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["off", "unavailable", "ok"],
        help_text="off: no Prometheus configured; unavailable: it did not answer (see error).",
    )
    minutes = serializers.IntegerField(help_text="The span of the series.")
    requests = serializers.ListField(
        child=serializers.FloatField(allow_null=True),
        help_text="Requests per second, 60 evenly spaced points, oldest first; null where there is no data.",
    )
    errors = serializers.ListField(
        child=serializers.FloatField(allow_null=True), help_text="The 5xx ratio (0–1) at the same points."
    )
    error = serializers.CharField()


class CockpitEnvironmentSerializer(serializers.Serializer):
    environment = serializers.CharField()
    label = serializers.CharField()
    onboarded = serializers.BooleanField()
    namespace = serializers.CharField(help_text="Empty when not onboarded.")
    cluster = serializers.CharField(help_text="Empty when not onboarded.")
    running = CockpitRunningSerializer(allow_null=True, help_text="The version running now; null if none.")
    in_flight = CockpitInFlightSerializer(many=True)
    awaiting_confirmation = CockpitAwaitingSerializer(
        allow_null=True, help_text="The test release running unconfirmed; null if none."
    )
    releases = CockpitReleaseSerializer(many=True, help_text="The last three releases, newest first.")
    open_ticket = CockpitTicketSerializer(allow_null=True)
    can_terminal = serializers.BooleanField()
    dashboard_url = serializers.CharField(
        allow_null=True,
        help_text="The environment's Grafana dashboard, once saved; null before (or without Grafana).",
    )
    live = CockpitLiveSerializer(
        allow_null=True,
        required=False,
        help_text="With `?live=true`: the cluster's state. Null without it, or when not onboarded.",
    )
    traffic = CockpitTrafficSerializer(
        allow_null=True,
        required=False,
        help_text="With `?live=true`: the recent traffic from Prometheus. Null without it, or when not "
        "onboarded.",
    )


class CockpitTicketsSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    tickets = CockpitTicketSerializer(many=True)


class CockpitSerializer(serializers.Serializer):
    project = serializers.CharField()
    environments = CockpitEnvironmentSerializer(many=True)
    open_tickets = CockpitTicketsSerializer()


class CockpitQuerySerializer(serializers.Serializer):
    live = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Also read each environment's cluster and Prometheus (slower; an unreachable one is "
        "reported in its `error`, not as a failed request).",
    )


class CockpitView(APIView):
    @extend_schema(
        parameters=[CockpitQuerySerializer],
        responses=CockpitSerializer,
        summary="A project's cockpit: per environment the running version, what is in flight, the last "
        "releases, and the open tickets",
        description="What the project overview shows. The cluster's state and the traffic are read only "
        "with `?live=true`, as the page loads them after the page.",
    )
    def get(self, request, name: str):
        query = CockpitQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        found = cockpit.cockpit_get(user=request.user, name=name)
        data = cockpit.cockpit_with_live(found) if query.validated_data["live"] else found.data
        return Response(CockpitSerializer(data).data)
