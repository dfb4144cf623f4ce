from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from opsportal.http import client_address
from projects import selectors, services
from projects.access import Action, get_project, is_ops
from projects.choices import Language, Role
from projects.models import Project, ProjectMember


class ProjectSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "language", "gitlab_repository", "owner", "created_at"]


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = ProjectMember
        fields = ["username", "role", "prod_terminal", "created_at"]


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
    prod_terminal = serializers.BooleanField(default=False)


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
        return project.members.select_related("user")

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
        return Response(MemberSerializer(member).data)


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
