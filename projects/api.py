from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from opsportal.http import client_address
from projects import selectors, services
from projects.access import Action, OpsOnly, get_project, is_ops
from projects.choices import Language, Role
from projects.models import ProdTerminalGrant, Project, ProjectMember


class ProjectSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "language", "gitlab_repository", "owner", "created_at"]


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    prod_terminal = serializers.SerializerMethodField(help_text="Holds a production terminal grant now.")
    prod_terminal_expires_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="When the grant ends; null without one."
    )

    class Meta:
        model = ProjectMember
        fields = ["username", "role", "prod_terminal", "prod_terminal_expires_at", "created_at"]

    def get_prod_terminal(self, member) -> bool:
        return member.prod_terminal_expires_at is not None


class ProjectSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = list(services.SETTINGS_FIELDS)
        extra_kwargs = {name: {"required": False} for name in services.SETTINGS_FIELDS}


class ProjectCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=63)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    language = serializers.ChoiceField(choices=Language.choices)
    # The empty alternative is in the pattern too, so the documented default ("") matches it.
    gitlab_repository = serializers.RegexField(
        r"^([A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+)?$",
        required=False,
        allow_blank=True,
        default="",
        max_length=255,
    )
    owner = serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.filter(is_active=True)
    )


class MemberSetSerializer(serializers.Serializer):
    username = serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.filter(is_active=True)
    )
    role = serializers.ChoiceField(choices=Role.choices)
    prod_terminal = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text=(
            "Ops only: true grants production terminals for the default duration, false revokes them; "
            "omitted or null leaves them as they are. Anyone else asking for a change gets 403."
        ),
    )


@extend_schema(
    parameters=[
        OpenApiParameter("q", str, description="Search in name and description"),
        OpenApiParameter("scope", str, enum=["mine", "all"], description="Only my projects (default) or all"),
    ]
)
class ProjectListView(generics.ListAPIView):
    serializer_class = ProjectSerializer

    @extend_schema(request=ProjectCreateSerializer, responses={201: ProjectSerializer})
    def post(self, request):
        """Create a project (ops)."""
        if not is_ops(request.user):
            raise PermissionDenied("Only ops create projects.")
        data = ProjectCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        project = services.project_create(
            actor=request.user, remote_addr=client_address(request), **data.validated_data
        )
        return Response(ProjectSerializer(project).data, status=status.HTTP_201_CREATED)

    def get_queryset(self):
        params = self.request.query_params
        return selectors.project_list(
            user=self.request.user, query=params.get("q", "")[:100], mine=params.get("scope", "mine") != "all"
        )


class ProjectDetailView(generics.RetrieveAPIView):
    serializer_class = ProjectSerializer

    def get_object(self):
        return get_project(self.request.user, name=self.kwargs["name"], action=Action.VIEW)


class ProjectSettingsView(APIView):
    @extend_schema(responses=ProjectSettingsSerializer, summary="A project's release settings (owner or ops)")
    def get(self, request, name: str):
        project = get_project(request.user, name=name, action=Action.EDIT_PROJECT)
        return Response(ProjectSettingsSerializer(project).data)

    @extend_schema(
        request=ProjectSettingsSerializer,
        responses=ProjectSettingsSerializer,
        summary="Change a project's release settings (owner or ops); recorded in the audit log",
    )
    def patch(self, request, name: str):
        project = get_project(request.user, name=name, action=Action.EDIT_PROJECT)
        data = ProjectSettingsSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        project = services.project_update_settings(
            actor=request.user, project=project, remote_addr=client_address(request), **data.validated_data
        )
        return Response(ProjectSettingsSerializer(project).data)


class MemberListView(generics.ListAPIView):
    serializer_class = MemberSerializer
    pagination_class = None

    def get_queryset(self):
        project = get_project(self.request.user, name=self.kwargs["name"], action=Action.VIEW)
        return selectors.member_list(project=project)

    @extend_schema(request=MemberSetSerializer, responses=MemberSerializer)
    def post(self, request, name: str):
        """Add a member or change their role (owner or ops)."""
        project = get_project(request.user, name=name, action=Action.MANAGE_MEMBERS)
        data = MemberSetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        member = services.member_set(
            actor=request.user,
            project=project,
            user=data.validated_data["username"],
            role=data.validated_data["role"],
            prod_terminal=data.validated_data["prod_terminal"],
            remote_addr=client_address(request),
        )
        return Response(MemberSerializer(selectors.member_list(project=project).get(pk=member.pk)).data)


class MemberDetailView(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request, name: str, username: str):
        """Remove a member (owner or ops); the owner cannot be removed."""
        project = get_project(request.user, name=name, action=Action.MANAGE_MEMBERS)
        member = project.members.select_related("user").filter(user__username=username).first()
        if member is not None:
            services.member_remove(
                actor=request.user,
                project=project,
                user=member.user,
                remote_addr=client_address(request),
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TerminalGrantSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)
    granted_by = serializers.CharField(source="granted_by.username", read_only=True, allow_null=True)
    ended_by = serializers.CharField(source="ended_by.username", read_only=True, allow_null=True)
    active = serializers.SerializerMethodField()
    remaining_seconds = serializers.SerializerMethodField(help_text="Seconds of access left; 0 once ended.")

    class Meta:
        model = ProdTerminalGrant
        fields = [
            "id",
            "project",
            "username",
            "granted_by",
            "granted_at",
            "expires_at",
            "active",
            "remaining_seconds",
            "ended_at",
            "end_reason",
            "ended_by",
        ]
        read_only_fields = fields
        extra_kwargs = {"ended_at": {"allow_null": True}}

    def get_active(self, grant) -> bool:
        return grant.is_active()

    def get_remaining_seconds(self, grant) -> int:
        return grant.remaining_seconds()


class TerminalGrantListSerializer(serializers.Serializer):
    active = TerminalGrantSerializer(many=True, help_text="Grants giving access now, soonest expiry first.")
    ended = TerminalGrantSerializer(
        many=True, help_text=f"The {selectors.RECENT_ENDED_GRANTS} latest expired or revoked grants."
    )


class TerminalGrantCreateSerializer(serializers.Serializer):
    project = serializers.SlugRelatedField(slug_field="name", queryset=Project.objects.all())
    username = serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.filter(is_active=True)
    )
    hours = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.PROD_TERMINAL_GRANT_MAX_HOURS,
        help_text=f"How long the grant lasts; {settings.PROD_TERMINAL_GRANT_HOURS} hours when omitted.",
    )


@extend_schema(tags=["terminal grants"])
class TerminalGrantListView(OpsOnly, APIView):
    @extend_schema(responses=TerminalGrantListSerializer, summary="Production terminal grants (ops)")
    def get(self, request):
        active, ended = selectors.terminal_grant_list(user=request.user)
        return Response(TerminalGrantListSerializer({"active": active, "ended": ended}).data)

    @extend_schema(
        request=TerminalGrantCreateSerializer,
        responses={201: TerminalGrantSerializer},
        summary="Grant a member production terminals of a project for some hours (ops); audited",
    )
    def post(self, request):
        data = TerminalGrantCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        grant = services.terminal_grant_create(
            actor=request.user,
            project=data.validated_data["project"],
            user=data.validated_data["username"],
            hours=data.validated_data.get("hours"),
            remote_addr=client_address(request),
        )
        return Response(TerminalGrantSerializer(grant).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["terminal grants"])
class TerminalGrantRevokeView(OpsOnly, APIView):
    @extend_schema(
        request=None,
        responses=TerminalGrantSerializer,
        summary="Revoke a production terminal grant now (ops); audited. An ended grant stays as it is",
    )
    def post(self, request, pk: int):
        grant = selectors.terminal_grant_get(user=request.user, pk=pk)
        grant = services.terminal_grant_revoke(
            actor=request.user, grant=grant, remote_addr=client_address(request)
        )
        return Response(TerminalGrantSerializer(grant).data)
