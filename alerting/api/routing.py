"""API: a project's alert policies (members read; the owner and ops change them) and the signed-in
person's notification preferences."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from alerting.choices import Mention, NoticeMethod, Severity
from alerting.models import Channel, Policy
from alerting.services import routing
from opsportal.http import client_address
from opsportal.notices import NoticeKind
from projects.access import Action, get_project
from projects.choices import Environment
from projects.models import UserProfile


class PolicySerializer(serializers.ModelSerializer):
    channels = serializers.SerializerMethodField(help_text="The names of the project's channels it sends to.")
    on_call = serializers.CharField(source="on_call.username", default=None, read_only=True)

    class Meta:
        model = Policy
        fields = ["id", *routing.POLICY_FIELDS, "channels", "updated_at"]

    def get_channels(self, policy) -> list[str]:
        return sorted(channel.name for channel in policy.channels.all())


class PolicyInputSerializer(serializers.Serializer):
    environment = serializers.ChoiceField(choices=Environment.choices)
    severity = serializers.ChoiceField(choices=Severity.choices)
    channels = serializers.ListField(
        child=serializers.CharField(max_length=100),
        default=list,
        max_length=50,
        help_text="Names of the project's channels.",
    )
    repeat_interval_minutes = serializers.IntegerField(min_value=1, max_value=7 * 24 * 60, default=240)
    quiet_start = serializers.TimeField(
        allow_null=True, default=None, help_text="Local time (the portal's TIME_ZONE); null: no quiet hours."
    )
    quiet_end = serializers.TimeField(allow_null=True, default=None)
    send_resolved = serializers.BooleanField(default=True)
    mention = serializers.ChoiceField(
        choices=Mention.choices, default=Mention.NONE, help_text="Critical policies only."
    )
    on_call = serializers.CharField(
        allow_null=True, default=None, max_length=150, help_text="Username of the on-call person."
    )


def _resolve(project, data: dict) -> dict:
    """Names to objects: channels of this project, the on-call user; unknown names are input errors."""
    values = dict(data)
    if "channels" in values:
        names = list(dict.fromkeys(values["channels"]))
        found = {c.name: c for c in Channel.objects.filter(project=project, name__in=names)}
        missing = [name for name in names if name not in found]
        if missing:
            raise ValidationError(
                {"channels": [f"No channel of this project is named: {', '.join(missing)}."]}
            )
        values["channels"] = [found[name] for name in names]
    if values.get("on_call"):
        user = get_user_model().objects.filter(username=values["on_call"], is_active=True).first()
        if user is None:
            raise ValidationError({"on_call": ["No active user has this username."]})
        values["on_call"] = user
    return values


def _policy(request, name: str, pk: int, action: Action) -> Policy:
    project = get_project(request.user, name=name, action=action)
    policy = Policy.objects.filter(project=project, pk=pk).select_related("project", "on_call").first()
    if policy is None:
        raise Http404("No such policy.")
    return policy


class PolicyListView(APIView):
    @extend_schema(responses=PolicySerializer(many=True), summary="A project's alert policies (members)")
    def get(self, request, name: str):
        project = get_project(request.user, name=name, action=Action.VIEW)
        policies = (
            Policy.objects.filter(project=project).select_related("on_call").prefetch_related("channels")
        )
        return Response(PolicySerializer(policies, many=True).data)

    @extend_schema(
        request=PolicyInputSerializer,
        responses={201: PolicySerializer},
        summary="Add the policy of an environment and severity (owner or ops); audited",
    )
    def post(self, request, name: str):
        project = get_project(request.user, name=name, action=Action.EDIT_PROJECT)
        data = PolicyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        policy = routing.policy_create(
            actor=request.user,
            project=project,
            remote_addr=client_address(request),
            **_resolve(project, data.validated_data),
        )
        return Response(PolicySerializer(policy).data, status=status.HTTP_201_CREATED)


class PolicyDetailView(APIView):
    @extend_schema(responses=PolicySerializer, summary="One alert policy (members)")
    def get(self, request, name: str, pk: int):
        return Response(PolicySerializer(_policy(request, name, pk, Action.VIEW)).data)

    @extend_schema(
        request=PolicyInputSerializer,
        responses=PolicySerializer,
        summary="Change an alert policy (owner or ops): only the fields given; audited",
    )
    def patch(self, request, name: str, pk: int):
        policy = _policy(request, name, pk, Action.EDIT_PROJECT)
        data = PolicyInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        policy = routing.policy_update(
            actor=request.user,
            policy_id=policy.pk,
            remote_addr=client_address(request),
            **_resolve(policy.project, data.validated_data),
        )
        return Response(PolicySerializer(policy).data)

    @extend_schema(
        request=None, responses={204: None}, summary="Delete an alert policy (owner or ops); audited"
    )
    def delete(self, request, name: str, pk: int):
        policy = _policy(request, name, pk, Action.EDIT_PROJECT)
        routing.policy_delete(actor=request.user, policy_id=policy.pk, remote_addr=client_address(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PreferencesSerializer(serializers.Serializer):
    mobile = serializers.CharField(
        max_length=20, allow_blank=True, help_text="The number chat robots @-mention you by."
    )
    methods = serializers.DictField(
        child=serializers.ChoiceField(choices=NoticeMethod.choices),
        help_text="How each kind of workflow notice reaches you: " + ", ".join(NoticeKind.values) + ".",
    )


class PreferencesInputSerializer(serializers.Serializer):
    mobile = serializers.CharField(max_length=20, allow_blank=True, required=False)
    methods = serializers.DictField(
        child=serializers.ChoiceField(choices=NoticeMethod.choices),
        required=False,
        help_text="Only the kinds to change.",
    )


def _preferences(user) -> dict:
    mobile = UserProfile.objects.filter(user=user).values_list("mobile", flat=True).first() or ""
    return {"mobile": mobile, "methods": routing.preferences_of(user)}


class PreferencesView(APIView):
    @extend_schema(responses=PreferencesSerializer, summary="My notification preferences")
    def get(self, request):
        return Response(PreferencesSerializer(_preferences(request.user)).data)

    @extend_schema(
        request=PreferencesInputSerializer,
        responses=PreferencesSerializer,
        summary="Change my notification preferences (per kind of notice: chat, email or off)",
    )
    def patch(self, request):
        data = PreferencesInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        routing.notification_preferences_set(
            actor=request.user,
            methods=data.validated_data.get("methods", {}),
            mobile=data.validated_data.get("mobile"),
            remote_addr=client_address(request),
        )
        return Response(PreferencesSerializer(_preferences(request.user)).data)
