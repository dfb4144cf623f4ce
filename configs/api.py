"""API: a project's Apollo settings and, per environment and namespace, its items (masked where the key
looks secret), the diff against the latest release, item edits, releases and rollbacks — the page's
actions over the same services. Apollo's refusals answer in the one error shape: 400 (Apollo refused
the input), 404 (no such namespace or key), 409 (changed meanwhile, already exists) or 502 (the
project's token was refused, Apollo is unreachable or not configured)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from configs import selectors
from configs.diff import ADDED, CHANGED, REMOVED
from configs.errors import ConfigError, apollo_error
from configs.services import apollo as services
from configs.services.apollo import MAX_COMMENT, MAX_KEY, MAX_RELEASE_COMMENT, MAX_ROLLBACK_STEPS, MAX_TITLE
from configs.services.settings import (
    MAX_NAMESPACES,
    apollo_settings_has_token,
    apollo_settings_update,
    settings_shown,
)
from integrations.errors import IntegrationError
from opsportal.http import client_address
from opsportal.versions import if_match_version
from projects.access import Action, get_project

TAGS = ["apollo"]


class ApolloAPIError(exceptions.APIException):
    """A ConfigError in the API: its sentence, with its status."""

    def __init__(self, error: ConfigError) -> None:
        self.status_code = error.status
        super().__init__(detail=str(error), code="apollo")


class _ApolloView(APIView):
    remote_errors = True  # Apollo is called in the request
    state_conflicts = True  # changed meanwhile, already exists, the release moved

    def handle_exception(self, exc):
        if isinstance(exc, ConfigError):
            exc = ApolloAPIError(exc)
        return super().handle_exception(exc)

    def target(self, edit: bool = False) -> selectors.ApolloTarget:
        return selectors.apollo_target(
            user=self.request.user,
            name=self.kwargs["name"],
            environment=self.kwargs["environment"],
            namespace=self.kwargs["namespace"],
            edit=edit,
        )

    def common(self, target) -> dict:
        return {
            "actor": self.request.user,
            "project": target.project,
            "environment": target.environment,
            "namespace": target.namespace,
            "remote_addr": client_address(self.request),
        }


# --- settings ---------------------------------------------------------------------------------------------


class ApolloSettingsSerializer(serializers.Serializer):
    project = serializers.CharField()
    configured = serializers.BooleanField(help_text="The project has Apollo settings (else: the defaults).")
    app_id = serializers.CharField()
    cluster = serializers.CharField()
    namespaces = serializers.ListField(child=serializers.CharField())
    test_env = serializers.CharField(help_text="The Apollo environment of test, e.g. FAT.")
    prod_env = serializers.CharField(help_text="The Apollo environment of prod, e.g. PRO.")
    has_token = serializers.BooleanField(help_text="An Open API token is stored (it is never shown).")
    owner_may_edit_prod = serializers.BooleanField()
    apollo_enabled = serializers.BooleanField(
        help_text="The portal has an Apollo address (APOLLO_PORTAL_URL)."
    )


class ApolloSettingsInputSerializer(serializers.Serializer):
    """Every field is optional; on creation ``app_id`` and ``token`` are required. A blank or omitted
    token keeps the stored one. Only ops may turn ``owner_may_edit_prod`` on (403 for others)."""

    app_id = serializers.CharField(max_length=128, required=False)
    cluster = serializers.CharField(max_length=64, required=False)
    namespaces = serializers.ListField(
        child=serializers.CharField(max_length=128), required=False, max_length=MAX_NAMESPACES
    )
    test_env = serializers.CharField(max_length=32, required=False)
    prod_env = serializers.CharField(max_length=32, required=False)
    token = serializers.CharField(max_length=200, required=False, allow_blank=True, write_only=True)
    owner_may_edit_prod = serializers.BooleanField(required=False)


def _settings_data(project, row) -> dict:
    return {
        "project": project.name,
        "configured": row is not None,
        **settings_shown(row),
        "has_token": apollo_settings_has_token(row),
        "apollo_enabled": selectors.apollo_enabled(),
    }


class ApolloSettingsView(APIView):
    @extend_schema(tags=TAGS, responses=ApolloSettingsSerializer, summary="A project's Apollo settings")
    def get(self, request, name: str):
        project = get_project(request.user, name=name)
        row = selectors.apollo_settings_of(project)
        return Response(ApolloSettingsSerializer(_settings_data(project, row)).data)

    @extend_schema(
        tags=TAGS,
        request=ApolloSettingsInputSerializer,
        responses=ApolloSettingsSerializer,
        summary="Set or change a project's Apollo settings (owner or ops); audited, the token never shown",
    )
    def patch(self, request, name: str):
        project = get_project(request.user, name=name, action=Action.EDIT_PROJECT)
        data = ApolloSettingsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = apollo_settings_update(
            actor=request.user, project=project, remote_addr=client_address(request), **data.validated_data
        )
        return Response(ApolloSettingsSerializer(_settings_data(project, row)).data)


# --- one namespace ----------------------------------------------------------------------------------------


class ApolloItemSerializer(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.CharField(help_text="Masked (••••••) when the key looks secret.")
    secret = serializers.BooleanField(help_text="The key looks secret: its value is write-only.")
    comment = serializers.CharField()
    modified_by = serializers.CharField()
    modified_at = serializers.DateTimeField(allow_null=True)
    version = serializers.CharField(
        help_text="The last-modified time and value hash as read; send it back with an edit or a delete."
    )
    state = serializers.ChoiceField(
        choices=["", ADDED, CHANGED], help_text="Changed since the latest release: added, changed, or empty."
    )


class ApolloDiffSerializer(serializers.Serializer):
    key = serializers.CharField()
    kind = serializers.ChoiceField(choices=[ADDED, CHANGED, REMOVED])
    old = serializers.CharField(allow_null=True, help_text="The released value (masked when secret).")
    new = serializers.CharField(allow_null=True, help_text="The current value (masked when secret).")


class ApolloReleaseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    title = serializers.CharField(source="name")
    comment = serializers.CharField()
    released_by = serializers.CharField()
    released_at = serializers.DateTimeField(allow_null=True)


class ApolloHistorySerializer(serializers.Serializer):
    release_id = serializers.IntegerField()
    title = serializers.CharField()
    comment = serializers.CharField()
    released_by = serializers.CharField()
    released_at = serializers.DateTimeField(allow_null=True)
    by_portal = serializers.BooleanField(help_text="Made through the portal (else found in Apollo).")
    state = serializers.ChoiceField(choices=["current", "active", "rolled_back"])
    rolled_back_by = serializers.CharField()
    rolled_back_at = serializers.DateTimeField(allow_null=True)
    undo_count = serializers.IntegerField(
        help_text="Rolling back to this release undoes this many releases (1 for the current: undo it; "
        "0 when it cannot be gone back to)."
    )


class ApolloNamespaceSerializer(serializers.Serializer):
    project = serializers.CharField(source="target.project.name")
    environment = serializers.CharField(source="target.environment")
    apollo_env = serializers.CharField(source="target.ref.env")
    app_id = serializers.CharField(source="target.ref.app_id")
    cluster = serializers.CharField(source="target.ref.cluster")
    namespace = serializers.CharField(source="target.namespace")
    may_edit = serializers.BooleanField(source="target.may_edit")
    format = serializers.CharField()
    comment = serializers.CharField()
    items = ApolloItemSerializer(many=True)
    diff = ApolloDiffSerializer(many=True, help_text="What releasing now would change.")
    latest = ApolloReleaseSerializer(allow_null=True, help_text="The latest active release; null if never.")
    history = ApolloHistorySerializer(many=True)


class ApolloNamespaceView(_ApolloView):
    @extend_schema(
        tags=TAGS,
        responses=ApolloNamespaceSerializer,
        summary="A namespace: items, the diff against the latest release, the release history",
    )
    def get(self, request, **kwargs):
        view = selectors.namespace_read(self.target())
        if view.error is not None:
            raise view.error
        return Response(ApolloNamespaceSerializer(view).data)


class ApolloItemCreateSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=MAX_KEY)
    value = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=services.MAX_VALUE)
    comment = serializers.CharField(allow_blank=True, required=False, default="", max_length=MAX_COMMENT)


class ApolloItemUpdateSerializer(serializers.Serializer):
    value = serializers.CharField(
        allow_blank=True,
        trim_whitespace=False,
        required=False,
        max_length=services.MAX_VALUE,
        help_text="Omitted: the value stays (how a secret is re-commented without being read).",
    )
    comment = serializers.CharField(
        allow_blank=True, required=False, max_length=MAX_COMMENT, help_text="Omitted: the comment stays."
    )
    version = serializers.CharField(
        required=False,
        max_length=64,
        help_text="The item's version as read (or If-Match). When given, an item changed since is refused "
        "with 409 naming who changed it; without it the edit is made on whatever Apollo holds.",
    )


class ApolloItemListView(_ApolloView):
    @extend_schema(
        tags=TAGS,
        request=ApolloItemCreateSerializer,
        responses={201: ApolloItemSerializer},
        summary="Add a key to the namespace (the portal user is Apollo's operator)",
    )
    def post(self, request, **kwargs):
        target = self.target(edit=True)
        data = ApolloItemCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        item = services.config_item_create(**self.common(target), **data.validated_data)
        return Response(ApolloItemSerializer(selectors.item_row(item)).data, status=status.HTTP_201_CREATED)


VERSION_PARAMETER = OpenApiParameter(
    "version",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    required=False,
    description="The item's version as read (or If-Match): a key changed since is refused with 409.",
)


class ApolloItemView(_ApolloView):
    @extend_schema(tags=TAGS, responses=ApolloItemSerializer, summary="One key (masked when it looks secret)")
    def get(self, request, **kwargs):
        target = self.target()
        client = selectors.apollo_client(target.settings)
        try:
            item = client.item_get(ref=target.ref, key=kwargs["key"])
        except IntegrationError as exc:
            raise apollo_error(exc, where=target.where) from exc
        return Response(ApolloItemSerializer(selectors.item_row(item)).data)

    @extend_schema(
        tags=TAGS,
        request=ApolloItemUpdateSerializer,
        responses=ApolloItemSerializer,
        summary="Change a key's value or comment (a secret's value is write-only)",
    )
    def put(self, request, **kwargs):
        target = self.target(edit=True)
        data = ApolloItemUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        item = services.config_item_update(
            **self.common(target),
            key=kwargs["key"],
            value=data.validated_data.get("value"),
            comment=data.validated_data.get("comment"),
            version=data.validated_data.get("version") or if_match_version(request),
        )
        return Response(ApolloItemSerializer(selectors.item_row(item)).data)

    @extend_schema(
        tags=TAGS,
        parameters=[VERSION_PARAMETER],
        request=None,
        responses={204: None},
        summary="Delete a key from the namespace",
    )
    def delete(self, request, **kwargs):
        target = self.target(edit=True)
        version = request.query_params.get("version") or if_match_version(request)
        if version is not None and len(version) > 64:
            raise ValidationError({"version": "At most 64 characters."})
        services.config_item_delete(**self.common(target), key=kwargs["key"], version=version)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApolloReleaseInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=MAX_TITLE)
    comment = serializers.CharField(
        allow_blank=True, required=False, default="", max_length=MAX_RELEASE_COMMENT
    )


class ApolloReleaseListView(_ApolloView):
    @extend_schema(
        tags=TAGS,
        responses=ApolloHistorySerializer(many=True),
        summary="The releases the portal knows of, newest first, with what a rollback to each would undo",
    )
    def get(self, request, **kwargs):
        target = self.target()
        client = selectors.apollo_client(target.settings)
        try:
            latest = client.release_latest(ref=target.ref)
        except IntegrationError as exc:
            raise apollo_error(exc, where=target.where) from exc
        history = selectors.release_history(target.settings, target.environment, target.namespace, latest)
        return Response(ApolloHistorySerializer(history, many=True).data)

    @extend_schema(
        tags=TAGS,
        request=ApolloReleaseInputSerializer,
        responses={201: ApolloHistorySerializer},
        summary="Release the namespace as it is now (the portal user is releasedBy)",
    )
    def post(self, request, **kwargs):
        target = self.target(edit=True)
        data = ApolloReleaseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        record = services.config_release(**self.common(target), **data.validated_data)
        row = selectors.HistoryRow(
            release_id=record.release_id,
            title=record.title,
            comment=record.comment,
            released_by=record.released_by,
            released_at=record.released_at,
            by_portal=True,
            state="current",
            undo_count=1,
        )
        return Response(ApolloHistorySerializer(row).data, status=status.HTTP_201_CREATED)


class ApolloRollbackInputSerializer(serializers.Serializer):
    to_release = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        default=None,
        help_text="The release to make current again; null or omitted: undo the current release only.",
    )
    current = serializers.IntegerField(
        min_value=1, help_text="The current release as you read it: refused (409) when it is another now."
    )
    count = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ROLLBACK_STEPS,
        help_text="How many releases you confirm undoing (the history's undo_count): refused (409) when "
        "it differs now.",
    )


class ApolloRollbackResultSerializer(serializers.Serializer):
    undone = serializers.ListField(child=serializers.IntegerField(), help_text="Release ids rolled back.")
    current = ApolloReleaseSerializer(allow_null=True, help_text="Apollo's latest active release now.")


class ApolloRollbackView(_ApolloView):
    @extend_schema(
        tags=TAGS,
        request=ApolloRollbackInputSerializer,
        responses=ApolloRollbackResultSerializer,
        summary="Roll back to an earlier release: Apollo undoes its latest release, as often as confirmed",
    )
    def post(self, request, **kwargs):
        target = self.target(edit=True)
        data = ApolloRollbackInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.config_rollback(
            **self.common(target),
            to_release_id=data.validated_data["to_release"],
            current_release_id=data.validated_data["current"],
            count=data.validated_data["count"],
        )
        return Response(
            ApolloRollbackResultSerializer({"undone": result.undone, "current": result.current}).data
        )
