"""The DORA metrics API: one project's (members) and every project's (ops). See opsportal.dora."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from opsportal import dora
from projects.access import OpsOnly, get_project
from projects.choices import Environment


class DoraQuerySerializer(serializers.Serializer):
    environment = serializers.ChoiceField(
        choices=Environment.choices, required=False, default=Environment.PROD, help_text="Default prod."
    )
    start = serializers.DateTimeField(
        required=False,
        help_text=f"The period's start (included); default {dora.DEFAULT_DAYS} days before end.",
    )
    end = serializers.DateTimeField(required=False, help_text="The period's end (excluded); default now.")

    def validate_start(self, value):
        return self._bounded(value)

    def validate_end(self, value):
        return self._bounded(value)

    @staticmethod
    def _bounded(value):
        # Far from any deployment, and far enough from datetime's limits for the period's arithmetic.
        if not dora.EARLIEST <= value < dora.LATEST:
            raise serializers.ValidationError(
                f"Choose a moment from {dora.EARLIEST.year} to {dora.LATEST.year - 1}."
            )
        return value

    def validate(self, attrs):
        end = attrs.get("end") or timezone.now()
        start = attrs.get("start") or end - timedelta(days=dora.DEFAULT_DAYS)
        if start >= end:
            raise serializers.ValidationError({"start": ["The start must be before the end."]})
        if end - start > timedelta(days=dora.MAX_DAYS):
            raise serializers.ValidationError(
                {"start": [f"The period can be at most {dora.MAX_DAYS} days long."]}
            )
        return {"environment": attrs["environment"], "period": dora.Period(start=start, end=end)}


class DoraFrequencySerializer(serializers.Serializer):
    deployments = serializers.IntegerField(help_text="Successful deployments in the period.")
    per_day = serializers.FloatField()
    per_week = serializers.FloatField()


class DoraDurationsSerializer(serializers.Serializer):
    median_seconds = serializers.FloatField(allow_null=True, help_text="Null when count is 0.")
    p90_seconds = serializers.FloatField(allow_null=True, help_text="Nearest rank; null when count is 0.")


class DoraLeadTimeSerializer(DoraDurationsSerializer):
    count = serializers.IntegerField(help_text="Successful deployments with a known commit time.")
    without_commit_time = serializers.IntegerField()


class DoraCausesSerializer(serializers.Serializer):
    rollout_failed = serializers.IntegerField()
    regressed = serializers.IntegerField()
    rolled_back = serializers.IntegerField()
    critical_alert = serializers.IntegerField()


class DoraFailureRateSerializer(serializers.Serializer):
    deployments = serializers.IntegerField(help_text="Deployments whose rollout ended in the period.")
    failed = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True, help_text="failed / deployments (0–1); null without any.")
    causes = DoraCausesSerializer(help_text="Failed deployments by cause (one can have several).")


class DoraRestoreSerializer(DoraDurationsSerializer):
    count = serializers.IntegerField(help_text="Failed deployments restored.")
    unrestored = serializers.IntegerField(help_text="Failed deployments not restored yet.")


class DoraDaySerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="The day's start (days count from the period's start).")
    deployments = serializers.IntegerField(help_text="Successful deployments that day.")
    failed = serializers.IntegerField(help_text="Failed deployments that day.")


class DoraDefinitionsSerializer(serializers.Serializer):
    deployment = serializers.CharField()
    deployment_frequency = serializers.CharField()
    lead_time = serializers.CharField()
    change_failure_rate = serializers.CharField()
    time_to_restore = serializers.CharField()


class DoraFiguresSerializer(serializers.Serializer):
    deployment_frequency = DoraFrequencySerializer()
    lead_time = DoraLeadTimeSerializer()
    change_failure_rate = DoraFailureRateSerializer()
    time_to_restore = DoraRestoreSerializer()


class DoraReportSerializer(DoraFiguresSerializer):
    environment = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    days = serializers.FloatField(help_text="The period's length in days.")
    daily = DoraDaySerializer(many=True)
    definitions = DoraDefinitionsSerializer(
        help_text="How each figure is computed, in the request's language."
    )


class DoraChangeSerializer(serializers.Serializer):
    record_id = serializers.IntegerField(help_text="The deployment record.")
    release_id = serializers.IntegerField()
    project = serializers.CharField()
    version = serializers.CharField()
    kind = serializers.CharField(help_text="release or promotion")
    outcome = serializers.CharField(help_text="succeeded or failed")
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    committed_at = serializers.DateTimeField(allow_null=True)
    lead_time_seconds = serializers.FloatField(allow_null=True)
    failed = serializers.BooleanField()
    causes = serializers.ListField(
        child=serializers.ChoiceField(choices=list(dora.CAUSES)), help_text="Why it counts as failed."
    )
    failed_at = serializers.DateTimeField(allow_null=True)
    restored_at = serializers.DateTimeField(allow_null=True)
    restore_seconds = serializers.FloatField(allow_null=True)


class DoraProjectSerializer(DoraReportSerializer):
    project = serializers.CharField()
    changes = DoraChangeSerializer(many=True, help_text="Every deployment counted, oldest first.")


class DoraProjectRowSerializer(DoraFiguresSerializer):
    project = serializers.CharField()


class DoraOverviewSerializer(DoraReportSerializer):
    projects = DoraProjectRowSerializer(
        many=True, help_text="Each project with a deployment in the period, by name."
    )


class ProjectDoraView(APIView):
    @extend_schema(
        parameters=[DoraQuerySerializer],
        responses=DoraProjectSerializer,
        summary="A project's DORA metrics in one environment over a period",
        description="Deployment frequency, lead time for changes, change failure rate and time to restore, "
        "with the deployments they were computed from and each figure's definition.",
    )
    def get(self, request, name: str):
        get_project(request.user, name=name)  # an outsider learns nothing, not even that the query is bad
        query = DoraQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        _project, report = dora.dora_project(user=request.user, name=name, **query.validated_data)
        return Response(DoraProjectSerializer(report).data)


class DoraOverviewView(OpsOnly, APIView):
    @extend_schema(
        parameters=[DoraQuerySerializer],
        responses=DoraOverviewSerializer,
        summary="DORA metrics of every project in one environment over a period (ops)",
        description="All projects' deployments pooled, and each project's figures.",
    )
    def get(self, request):
        query = DoraQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        report = dora.dora_overview(user=request.user, **query.validated_data)
        return Response(DoraOverviewSerializer(report).data)
