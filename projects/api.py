from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers

from projects import selectors
from projects.access import Action, get_project
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


@extend_schema(
    parameters=[
        OpenApiParameter("q", str, description="Search in name and description"),
        OpenApiParameter("scope", str, enum=["mine", "all"], description="Only my projects (default) or all"),
    ]
)
class ProjectListView(generics.ListAPIView):
    serializer_class = ProjectSerializer

    def get_queryset(self):
        params = self.request.query_params
        return selectors.project_list(
            user=self.request.user, query=params.get("q", "")[:100], mine=params.get("scope", "mine") != "all"
        )


class ProjectDetailView(generics.RetrieveAPIView):
    serializer_class = ProjectSerializer

    def get_object(self):
        return get_project(self.request.user, name=self.kwargs["name"], action=Action.VIEW)


class MemberListView(generics.ListAPIView):
    serializer_class = MemberSerializer
    pagination_class = None

    def get_queryset(self):
        project = get_project(self.request.user, name=self.kwargs["name"], action=Action.VIEW)
        return project.members.select_related("user")
