"""API for terminal sessions, their recordings and commands, and the refused command patterns.

Sessions, recordings and commands are read-only: sessions are created by opening a terminal, and
recordings are never changed or deleted through the API. Who reads a session is
clusters.selectors.terminal's one rule (404 outside the project, 403 for other members). The command
search and the refused patterns are ops' own: 404 for everyone else.
"""

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.models import RefusedCommandPattern, TerminalCommand, TerminalSession
from clusters.selectors import terminal as selectors
from clusters.services import terminal_commands
from opsportal.http import client_address
from projects.access import OpsOnly
from projects.choices import Environment


class TerminalSessionSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name", read_only=True)
    duration_seconds = serializers.SerializerMethodField()
    recording_available = serializers.SerializerMethodField()

    class Meta:
        model = TerminalSession
        fields = [
            "id",
            "username",
            "project",
            "environment",
            "cluster_name",
            "namespace",
            "pod",
            "container",
            "width",
            "height",
            "remote_addr",
            "started_at",
            "ended_at",
            "duration_seconds",
            "end_reason",
            "bytes_in",
            "bytes_out",
            "recording_available",
        ]
        read_only_fields = fields

    def get_duration_seconds(self, obj) -> float | None:
        return round(obj.duration.total_seconds(), 3) if obj.duration else None

    def get_recording_available(self, obj) -> bool:
        return obj.recording_path is not None


class SessionFilterSerializer(serializers.Serializer):
    project = serializers.CharField(required=False, max_length=63)
    user = serializers.CharField(required=False, max_length=150)


@extend_schema(parameters=[SessionFilterSerializer], summary="Terminal sessions you may read")
class TerminalSessionListView(generics.ListAPIView):
    serializer_class = TerminalSessionSerializer

    def get_queryset(self):
        filters = SessionFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.sessions_readable(
            self.request.user,
            project=filters.validated_data.get("project", ""),
            username=filters.validated_data.get("user", ""),
        )


@extend_schema(summary="One terminal session")
class TerminalSessionDetailView(generics.RetrieveAPIView):
    serializer_class = TerminalSessionSerializer

    def get_object(self):
        return selectors.session_get(self.request.user, session_id=self.kwargs["pk"])


class TerminalRecordingView(APIView):
    @extend_schema(
        summary="The session's recording (asciicast v2)",
        responses={(200, "application/x-asciicast"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request, pk: int):
        session = selectors.session_get(request.user, session_id=pk)
        path = session.recording_path
        if path is None or not path.exists():
            raise Http404("The recording is no longer available.")
        return FileResponse(
            open(path, "rb"),  # noqa: SIM115 - FileResponse closes it
            content_type="application/x-asciicast",
            as_attachment=True,
            filename=f"terminal-session-{session.pk}.cast",
        )


# --- commands --------------------------------------------------------------------------------------


class TerminalCommandSerializer(serializers.ModelSerializer):
    session = serializers.IntegerField(source="session_id", read_only=True)
    exit_status = serializers.IntegerField(read_only=True, allow_null=True)
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = TerminalCommand
        fields = [
            "id",
            "session",
            "position",
            "entered_at",
            "text",
            "exact",
            "exit_status",
            "finished_at",
            "refused",
            "refused_pattern",
        ]
        read_only_fields = fields


class TerminalCommandHitSerializer(TerminalCommandSerializer):
    username = serializers.CharField(source="session.username", read_only=True)
    project = serializers.CharField(source="session.project.name", read_only=True)
    environment = serializers.CharField(source="session.environment", read_only=True)
    pod = serializers.CharField(source="session.pod", read_only=True)

    class Meta(TerminalCommandSerializer.Meta):
        fields = [*TerminalCommandSerializer.Meta.fields, "username", "project", "environment", "pod"]
        read_only_fields = fields


@extend_schema(summary="The commands entered in a terminal session")
class TerminalSessionCommandsView(generics.ListAPIView):
    serializer_class = TerminalCommandSerializer

    def get_queryset(self):
        session = selectors.session_get(self.request.user, session_id=self.kwargs["pk"])
        return selectors.session_commands(session)


class CommandSearchSerializer(serializers.Serializer):
    project = serializers.CharField(required=False, max_length=63)
    environment = serializers.ChoiceField(required=False, choices=Environment.choices)
    user = serializers.CharField(required=False, max_length=150)
    q = serializers.CharField(required=False, max_length=200, help_text="Text the command contains.")
    since = serializers.DateTimeField(required=False, help_text="Entered at or after (ISO 8601).")
    until = serializers.DateTimeField(required=False, help_text="Entered before (ISO 8601).")


@extend_schema(parameters=[CommandSearchSerializer], summary="Search commands across terminal sessions (ops)")
class TerminalCommandSearchView(OpsOnly, generics.ListAPIView):
    serializer_class = TerminalCommandHitSerializer

    def get_queryset(self):
        filters = CommandSearchSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return selectors.commands_search(**filters.validated_data)


# --- refused patterns ------------------------------------------------------------------------------


class RefusedPatternSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True, default=None
    )

    class Meta:
        model = RefusedCommandPattern
        fields = ["id", "environment", "kind", "pattern", "description", "created_by", "created_at"]
        read_only_fields = ["id", "created_by", "created_at"]
        # Uniqueness and the pattern's own rules are checked once, by the service.
        validators = []


class PatternFilterSerializer(serializers.Serializer):
    environment = serializers.ChoiceField(required=False, choices=Environment.choices)


@extend_schema(tags=["terminal"])
class RefusedPatternListCreateView(OpsOnly, generics.ListCreateAPIView):
    serializer_class = RefusedPatternSerializer

    @extend_schema(parameters=[PatternFilterSerializer], summary="Refused command patterns (ops)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(summary="Refuse a command pattern in an environment's terminals (ops)")
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def get_queryset(self):
        filters = PatternFilterSerializer(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        patterns = RefusedCommandPattern.objects.select_related("created_by")
        if environment := filters.validated_data.get("environment"):
            patterns = patterns.filter(environment=environment)
        return patterns

    def perform_create(self, serializer):
        serializer.instance = terminal_commands.pattern_create(
            actor=self.request.user, remote_addr=client_address(self.request), **serializer.validated_data
        )


@extend_schema(tags=["terminal"])
class RefusedPatternDetailView(OpsOnly, APIView):
    @extend_schema(responses=RefusedPatternSerializer, summary="One refused command pattern (ops)")
    def get(self, request, pk: int):
        pattern = RefusedCommandPattern.objects.select_related("created_by").filter(pk=pk).first()
        if pattern is None:
            raise Http404("No such pattern.")
        return Response(RefusedPatternSerializer(pattern).data)

    @extend_schema(responses={204: None}, summary="Stop refusing a command pattern (ops)")
    def delete(self, request, pk: int):
        if not RefusedCommandPattern.objects.filter(pk=pk).exists():
            raise Http404("No such pattern.")
        terminal_commands.pattern_delete(
            actor=request.user, pattern_id=pk, remote_addr=client_address(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
