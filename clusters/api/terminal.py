"""Read-only API for terminal sessions and their recordings. There is no write method: sessions are
created by opening a terminal, and recordings are never changed or deleted through the API."""

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers
from rest_framework.views import APIView

from clusters.models import TerminalSession
from clusters.services import terminal


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
        return terminal.sessions_visible_to(
            self.request.user,
            project=filters.validated_data.get("project", ""),
            username=filters.validated_data.get("user", ""),
        )


@extend_schema(summary="One terminal session")
class TerminalSessionDetailView(generics.RetrieveAPIView):
    serializer_class = TerminalSessionSerializer

    def get_object(self):
        return terminal.session_for(self.request.user, session_id=self.kwargs["pk"])


class TerminalRecordingView(APIView):
    @extend_schema(
        summary="The session's recording (asciicast v2)",
        responses={(200, "application/x-asciicast"): OpenApiResponse(OpenApiTypes.BINARY)},
    )
    def get(self, request, pk: int):
        session = terminal.session_for(request.user, session_id=pk)
        path = session.recording_path
        if path is None or not path.exists():
            raise Http404("The recording is no longer available.")
        return FileResponse(
            open(path, "rb"),  # noqa: SIM115 - FileResponse closes it
            content_type="application/x-asciicast",
            as_attachment=True,
            filename=f"terminal-session-{session.pk}.cast",
        )
