from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError

from observability.forms import AuditFilterForm
from observability.models import AuditEvent
from observability.selectors import audit_events_for


class AuditEventSerializer(serializers.ModelSerializer):
    # The name kept on the row, so it outlives the project; null for events outside any project.
    project = serializers.SerializerMethodField()

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "actor_name",
            "verb",
            "target_type",
            "target_id",
            "target_repr",
            "project",
            "changes",
            "remote_addr",
            "created_at",
        ]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_project(self, event: AuditEvent) -> str | None:
        return event.project_name or None


class AuditFilterSerializer(serializers.Serializer):
    project = serializers.CharField(required=False, max_length=63)
    actor = serializers.CharField(required=False, max_length=150)
    verb = serializers.CharField(required=False, max_length=64)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


@extend_schema(parameters=[AuditFilterSerializer], summary="Audit events you may read (append-only)")
class AuditEventListView(generics.ListAPIView):
    serializer_class = AuditEventSerializer

    def get_queryset(self):
        form = AuditFilterForm(self.request.query_params)
        if not form.is_valid():
            raise ValidationError(form.errors)
        return audit_events_for(user=self.request.user, **form.cleaned_data)
