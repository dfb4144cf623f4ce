"""API plumbing shared by every app: one exception handler and the /api/me/ endpoint."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from observability import services as observability_services
from opsportal.errors import Conflict
from projects.access import is_ops, is_qa, visible_projects


class ConflictError(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's current state does not allow this."
    default_code = "conflict"


def exception_handler(exc, context):
    """Every API error is JSON with a human-readable `detail` (and field errors where there are)."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Conflict):
        exc = ConflictError(str(exc))
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "Invalid input.", "errors": response.data}
    return response


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
