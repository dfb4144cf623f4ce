from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from deploys import selectors, services
from deploys.choices import ReleaseStatus
from deploys.models import BuildRecipe, DeploymentRecord, Release
from opsportal.http import client_address
from projects.access import Action, get_project, is_ops
from projects.choices import Environment, Language


class VerificationPeriodSerializer(serializers.Serializer):
    requests = serializers.IntegerField(help_text="Requests served in the period")
    errors = serializers.IntegerField(help_text="5xx answers in the period")
    error_ratio = serializers.FloatField(help_text="errors / requests (0 without requests)")
    error_percent = serializers.FloatField()
    p95_seconds = serializers.FloatField(allow_null=True, help_text="null without latency samples")
    p95_ms = serializers.IntegerField(allow_null=True)


class VerificationSerializer(serializers.Serializer):
    # The verdict itself is the release's ``verification_status``.
    label = serializers.CharField(help_text="The verdict in the reader's language")
    until = serializers.DateTimeField(allow_null=True, help_text="When a pending verification concludes")
    window_seconds = serializers.IntegerField(allow_null=True)
    new = VerificationPeriodSerializer(allow_null=True, help_text="The window after the rollout")
    baseline = VerificationPeriodSerializer(
        allow_null=True, help_text="The same length of time before the rollout (the previous version)"
    )
    reasons = serializers.ListField(child=serializers.CharField(), help_text="Why it regressed")
    rollback = serializers.CharField(help_text="The automatic rollback it caused, or why none")
    error = serializers.CharField(help_text="Why no verdict could be drawn")
    verified_at = serializers.DateTimeField(allow_null=True)


class ConfigChangeSerializer(serializers.Serializer):
    namespace = serializers.CharField(
        max_length=128,
        required=False,
        default="application",
        help_text="One of the project's Apollo namespaces",
    )
    key = serializers.CharField(max_length=128)
    value = serializers.CharField(
        max_length=20000,
        required=False,
        allow_null=True,
        allow_blank=True,
        trim_whitespace=False,
        help_text="The new value; answers mask secret-looking keys' values",
    )
    delete = serializers.BooleanField(required=False, default=False, help_text="Delete the key instead")
    comment = serializers.CharField(max_length=256, required=False, allow_blank=True, default="")


class ReleaseSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    confirmed_by = serializers.CharField(source="confirmed_by.username", default=None, read_only=True)
    image = serializers.CharField(read_only=True)
    recipe_version = serializers.IntegerField(source="recipe.version", default=None, read_only=True)
    verification = serializers.SerializerMethodField()
    config_changes = serializers.SerializerMethodField()
    config_releases = serializers.DictField(
        child=serializers.IntegerField(allow_null=True),
        read_only=True,
        help_text="Per Apollo namespace, the release id this release ran with (null: never released)",
    )

    class Meta:
        model = Release
        fields = [
            "id",
            "project",
            "environment",
            "status",
            "version",
            "branch",
            "commit_sha",
            "description",
            "image",
            "image_repository",
            "image_digest",
            "jenkins_job",
            "jenkins_build",
            "recipe_version",
            "promoted_from",
            "created_by",
            "confirmed_by",
            "confirmed_at",
            "error",
            "created_at",
            "updated_at",
            "finished_at",
            "verification_status",
            "verification",
            "config_changes",
            "config_releases",
        ]
        read_only_fields = fields

    @extend_schema_field(ConfigChangeSerializer(many=True))
    def get_config_changes(self, release: Release) -> list:
        return ConfigChangeSerializer(services.change_set_shown(release), many=True).data

    @extend_schema_field(VerificationSerializer)
    def get_verification(self, release: Release) -> dict:
        return VerificationSerializer(selectors.release_verification(release)).data


class ReleaseConsoleSerializer(serializers.Serializer):
    console = serializers.CharField()
    offset = serializers.IntegerField(source="console_offset")


class ReleaseSubmitSerializer(serializers.Serializer):
    branch = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    config_changes = ConfigChangeSerializer(
        many=True,
        required=False,
        help_text="Apollo changes for test, applied and released before the image; "
        "promotion applies the same to prod",
    )


class DeploymentRecordSerializer(serializers.ModelSerializer):
    release = serializers.IntegerField(source="release.pk", read_only=True)
    version = serializers.CharField(source="release.version", read_only=True)
    actor = serializers.CharField(source="actor.username", default=None, read_only=True)

    class Meta:
        model = DeploymentRecord
        fields = [
            "id",
            "environment",
            "kind",
            "release",
            "version",
            "image",
            "previous_image",
            "outcome",
            "message",
            "actor",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class RollbackSerializer(serializers.Serializer):
    environment = serializers.ChoiceField(choices=Environment.choices)
    record = serializers.IntegerField(help_text="Id of an earlier successful deployment of that environment.")


class RecipeSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = BuildRecipe
        fields = ["language", "version", "dockerfile", "build_shell", "comment", "created_by", "created_at"]
        read_only_fields = ["language", "version", "created_by", "created_at"]


def _release(request, name: str, pk: int) -> Release:
    project = get_project(request.user, name=name, action=Action.VIEW)
    return get_object_or_404(selectors.releases_for_project(project=project), pk=pk)


class ProjectReleasesView(APIView):
    state_conflicts = True

    @extend_schema(responses=ReleaseSerializer(many=True), summary="A project's releases, newest first")
    def get(self, request, name: str):
        project = get_project(request.user, name=name, action=Action.VIEW)
        return Response(
            ReleaseSerializer(selectors.releases_for_project(project=project)[:200], many=True).data
        )

    @extend_schema(
        request=ReleaseSubmitSerializer,
        responses={201: ReleaseSerializer},
        summary="Release a branch to test (tag → build → deploy)",
    )
    def post(self, request, name: str):
        # The right before the input: a member who may not release hears 403, not what to fix.
        project = get_project(request.user, name=name, action=Action.RELEASE_TEST)
        data = ReleaseSubmitSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        release = services.release_submit(
            actor=request.user, project=project, remote_addr=client_address(request), **data.validated_data
        )
        return Response(ReleaseSerializer(release).data, status=status.HTTP_201_CREATED)


class ReleaseDetailView(APIView):
    @extend_schema(responses=ReleaseSerializer, summary="One release")
    def get(self, request, name: str, pk: int):
        return Response(ReleaseSerializer(_release(request, name, pk)).data)


class ReleaseConsoleView(APIView):
    @extend_schema(responses=ReleaseConsoleSerializer, summary="The build console (tail) of a release")
    def get(self, request, name: str, pk: int):
        return Response(ReleaseConsoleSerializer(_release(request, name, pk)).data)


@extend_schema(
    request=None, responses=ReleaseSerializer, summary="Confirm a deployed test release (testers, QA)"
)
class ReleaseConfirmView(APIView):
    state_conflicts = True

    def post(self, request, name: str, pk: int):
        release = services.release_confirm(
            actor=request.user, release_id=_release(request, name, pk).pk, remote_addr=client_address(request)
        )
        return Response(ReleaseSerializer(release).data)


@extend_schema(
    request=None,
    responses={201: ReleaseSerializer},
    summary="Deploy the confirmed test release's image to production",
)
class ReleasePromoteView(APIView):
    state_conflicts = True

    def post(self, request, name: str, pk: int):
        release = services.release_promote(
            actor=request.user, release_id=_release(request, name, pk).pk, remote_addr=client_address(request)
        )
        return Response(ReleaseSerializer(release).data, status=status.HTTP_201_CREATED)


@extend_schema(request=None, responses=ReleaseSerializer, summary="Cancel a release before its rollout")
class ReleaseCancelView(APIView):
    state_conflicts = True

    def post(self, request, name: str, pk: int):
        release = services.release_cancel(
            actor=request.user, release_id=_release(request, name, pk).pk, remote_addr=client_address(request)
        )
        return Response(ReleaseSerializer(release).data)


@extend_schema(
    parameters=[OpenApiParameter("environment", str, enum=["test", "prod"])],
    responses=DeploymentRecordSerializer(many=True),
    summary="Deployment history of an environment",
)
class DeploymentHistoryView(APIView):
    def get(self, request, name: str):
        project = get_project(request.user, name=name, action=Action.VIEW)
        environment = request.query_params.get("environment", "test")
        if environment not in ("test", "prod"):
            raise Http404("No such environment.")
        records = selectors.deployment_history(project=project, environment=environment)[:200]
        return Response(DeploymentRecordSerializer(records, many=True).data)


@extend_schema(
    request=RollbackSerializer,
    responses={202: DeploymentRecordSerializer},
    summary="Return an environment to an earlier successful deployment",
)
class RollbackView(APIView):
    state_conflicts = True

    def post(self, request, name: str):
        project = get_project(request.user, name=name, action=Action.VIEW)
        data = RollbackSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        record = services.release_rollback(
            actor=request.user,
            project=project,
            remote_addr=client_address(request),
            environment=data.validated_data["environment"],
            record_id=data.validated_data["record"],
        )
        return Response(DeploymentRecordSerializer(record).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(parameters=[OpenApiParameter("status", str, enum=ReleaseStatus.values)])
class ReleaseQueueView(generics.ListAPIView):
    serializer_class = ReleaseSerializer

    def get_queryset(self):
        wanted = self.request.query_params.get("status", "")
        return selectors.releases_visible(
            user=self.request.user, status=wanted if wanted in ReleaseStatus.values else ""
        )


class RecipeView(APIView):
    def _check(self, request, language: str) -> None:
        if not is_ops(request.user):
            raise Http404("No such recipe.")
        if language not in Language.values:
            raise Http404("No such language.")

    @extend_schema(responses=RecipeSerializer(many=True), summary="A language's build recipe versions (ops)")
    def get(self, request, language: str):
        self._check(request, language)
        return Response(RecipeSerializer(BuildRecipe.objects.filter(language=language), many=True).data)

    @extend_schema(
        request=RecipeSerializer,
        responses={201: RecipeSerializer},
        summary="Save a new version of a language's recipe (ops)",
    )
    def post(self, request, language: str):
        self._check(request, language)
        data = RecipeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        recipe = services.recipe_update(
            actor=request.user,
            language=language,
            remote_addr=client_address(request),
            dockerfile=data.validated_data["dockerfile"],
            build_shell=data.validated_data["build_shell"],
            comment=data.validated_data.get("comment", ""),
        )
        return Response(RecipeSerializer(recipe).data, status=status.HTTP_201_CREATED)
