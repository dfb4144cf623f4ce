"""API: alert channels (portal-wide for ops, per project for its owners and ops), their delivery logs
and "send a test message". Secrets are write-only: an answer says ``has_secret``, never the value."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from alerting.choices import ChannelKind, DeliveryStatus
from alerting.models import Channel
from alerting.selectors import channels as selectors
from alerting.services import channels as services
from opsportal.http import client_address
from projects.access import OpsOnly

TAGS = ["alerting"]


class ChannelSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    project = serializers.CharField(source="project.name", default=None, read_only=True)
    name = serializers.CharField(read_only=True)
    kind = serializers.ChoiceField(choices=ChannelKind.choices, read_only=True)
    enabled = serializers.BooleanField(read_only=True)
    keyword = serializers.CharField(source="config.keyword", default="", read_only=True)
    recipients = serializers.ListField(
        child=serializers.CharField(), source="config.recipients", default=list, read_only=True
    )
    numbers = serializers.ListField(
        child=serializers.CharField(), source="config.numbers", default=list, read_only=True
    )
    sign_name = serializers.CharField(source="config.sign_name", default="", read_only=True)
    template_code = serializers.CharField(source="config.template_code", default="", read_only=True)
    has_secret = serializers.SerializerMethodField(help_text="Credentials are stored (never shown).")
    last_error = serializers.CharField(
        read_only=True, help_text="The last permanent error: a configuration error to fix. Empty when fine."
    )
    last_error_at = serializers.DateTimeField(read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def get_has_secret(self, channel: Channel) -> bool:
        return services.channel_has_secret(channel)


class ChannelInputSerializer(serializers.Serializer):
    """The kind's fields: DingTalk access_token (+ signing_secret, keyword); WeCom key; email recipients;
    SMS numbers, sign_name, template_code. Secrets are write-only; blank keeps the stored value."""

    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    enabled = serializers.BooleanField(default=True)
    keyword = serializers.CharField(max_length=64, required=False, allow_blank=True)
    recipients = serializers.ListField(
        child=serializers.CharField(max_length=254), required=False, max_length=services.MAX_ADDRESSES
    )
    numbers = serializers.ListField(
        child=serializers.CharField(max_length=20), required=False, max_length=services.MAX_ADDRESSES
    )
    sign_name = serializers.CharField(max_length=50, required=False, allow_blank=True)
    template_code = serializers.CharField(max_length=30, required=False, allow_blank=True)
    access_token = serializers.CharField(max_length=200, required=False, allow_blank=True, write_only=True)
    signing_secret = serializers.CharField(max_length=200, required=False, allow_blank=True, write_only=True)
    key = serializers.CharField(max_length=200, required=False, allow_blank=True, write_only=True)


class ChannelUpdateSerializer(ChannelInputSerializer):
    name = serializers.CharField(max_length=100, required=False)
    kind = serializers.ChoiceField(choices=ChannelKind.choices, required=False, help_text="Cannot change.")
    enabled = serializers.BooleanField(required=False)


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    cause = serializers.CharField()
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    title = serializers.CharField()
    alert = serializers.IntegerField(source="alert_id", allow_null=True)
    batch = serializers.IntegerField(
        source="batch_id", allow_null=True, help_text="The delivery this one went out merged into."
    )
    attempts = serializers.IntegerField()
    errcode = serializers.CharField()
    error = serializers.CharField()
    created_at = serializers.DateTimeField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    attempted_at = serializers.DateTimeField(allow_null=True)
    sent_at = serializers.DateTimeField(allow_null=True)


class _Scoped:
    """Project channels under /api/projects/<name>/channels/, portal-wide ones under /api/channels/."""

    def project_name(self) -> str | None:
        return self.kwargs.get("name")

    def channel(self, action=selectors.Action.VIEW) -> Channel:
        return selectors.channel_get(
            user=self.request.user, pk=self.kwargs["pk"], project_name=self.project_name(), action=action
        )


class ChannelListView(_Scoped, generics.ListAPIView):
    serializer_class = ChannelSerializer

    def get_queryset(self):
        return selectors.channel_list(user=self.request.user, project_name=self.project_name())

    @extend_schema(tags=TAGS, summary="Alert channels")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        tags=TAGS,
        request=ChannelInputSerializer,
        responses={201: ChannelSerializer},
        summary="Add an alert channel",
    )
    def post(self, request, **kwargs):
        project = selectors.channel_scope(
            request.user, project_name=self.project_name(), action=selectors.MANAGE
        )
        data = ChannelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        channel = services.channel_create(
            actor=request.user, project=project, remote_addr=client_address(request), **data.validated_data
        )
        return Response(ChannelSerializer(channel).data, status=status.HTTP_201_CREATED)


class ChannelDetailView(_Scoped, generics.GenericAPIView):
    serializer_class = ChannelSerializer

    @extend_schema(tags=TAGS, summary="One alert channel")
    def get(self, request, **kwargs):
        return Response(ChannelSerializer(self.channel()).data)

    @extend_schema(
        tags=TAGS,
        request=ChannelUpdateSerializer,
        responses={200: ChannelSerializer},
        summary="Change an alert channel (blank secrets keep the stored ones)",
    )
    def patch(self, request, **kwargs):
        channel = self.channel(selectors.MANAGE)
        data = ChannelUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        channel = services.channel_update(
            actor=request.user, channel=channel, remote_addr=client_address(request), **data.validated_data
        )
        return Response(ChannelSerializer(channel).data)

    @extend_schema(
        tags=TAGS, request=None, responses={204: None}, summary="Remove an alert channel and its log"
    )
    def delete(self, request, **kwargs):
        channel = self.channel(selectors.MANAGE)
        services.channel_delete(actor=request.user, channel=channel, remote_addr=client_address(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ChannelTestView(_Scoped, generics.GenericAPIView):
    serializer_class = DeliverySerializer
    state_conflicts = True  # a disabled channel

    @extend_schema(
        tags=TAGS,
        request=None,
        responses={202: DeliverySerializer},
        summary="Send a test message; its delivery (in the log) shows the outcome",
    )
    def post(self, request, **kwargs):
        channel = self.channel(selectors.MANAGE)
        delivery = services.channel_send_test(
            actor=request.user, channel=channel, remote_addr=client_address(request)
        )
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


class ChannelDeliveriesView(_Scoped, generics.ListAPIView):
    serializer_class = DeliverySerializer

    def get_queryset(self):
        return selectors.delivery_log(channel=self.channel())

    @extend_schema(tags=TAGS, summary="The channel's delivery log, newest first")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# Portal-wide channels: everything is ops only, and hidden from everyone else.
class OpsChannelListView(OpsOnly, ChannelListView):
    pass


class OpsChannelDetailView(OpsOnly, ChannelDetailView):
    pass


class OpsChannelTestView(OpsOnly, ChannelTestView):
    pass


class OpsChannelDeliveriesView(OpsOnly, ChannelDeliveriesView):
    pass
