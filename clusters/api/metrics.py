"""The monitoring panels of an environment as JSON: the list of panels, and one panel's series."""

from __future__ import annotations

import math
import time

from django.utils.translation import gettext as _
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.selectors import environments as environment_selectors
from clusters.selectors import monitoring as selectors
from observability.monitoring.promql import PANELS, panel_get

DEFAULT_RANGE = 3600  # the last hour
TARGET_POINTS = 240  # the default step gives about this many points: enough for a panel's width
MIN_STEP = 5
MAX_RANGE = 31 * 86400
MAX_POINTS = 11_000  # Prometheus refuses more points per series than this
LATEST = 4_102_444_800  # 2100-01-01: a later (or negative) timestamp is a mistake, not a range


class MetricsQuery(serializers.Serializer):
    panel = serializers.CharField(required=False, allow_blank=True, default="")
    start = serializers.FloatField(required=False, allow_null=True, default=None)
    end = serializers.FloatField(required=False, allow_null=True, default=None)
    step = serializers.FloatField(required=False, allow_null=True, default=None)

    def _timestamp(self, value):
        if value is None:
            return None
        if not math.isfinite(value) or not 0 <= value <= LATEST:
            raise serializers.ValidationError(_("Give a Unix time in seconds."))
        return value

    validate_start = validate_end = _timestamp

    def validate_step(self, value):
        if value is None:
            return None
        if not math.isfinite(value) or value < MIN_STEP:
            raise serializers.ValidationError(_("The step is at least %(min)s seconds.") % {"min": MIN_STEP})
        return value

    def validate_panel(self, value):
        if value and panel_get(value) is None:
            raise serializers.ValidationError(
                _("No such panel. The panels are: %(ids)s.") % {"ids": ", ".join(p.id for p in PANELS)}
            )
        return value

    def validate(self, attrs):
        end = attrs["end"] if attrs["end"] is not None else time.time()
        start = attrs["start"] if attrs["start"] is not None else end - DEFAULT_RANGE
        if end <= start:
            raise serializers.ValidationError({"end": [_("The end must be after the start.")]})
        if end - start > MAX_RANGE:
            raise serializers.ValidationError({"start": [_("The range is at most 31 days.")]})
        step = attrs["step"] or max(MIN_STEP, math.ceil((end - start) / TARGET_POINTS))
        if (end - start) / step + 1 > MAX_POINTS:
            raise serializers.ValidationError(
                {
                    "step": [
                        _("Too many points: at most %(max)s per series; raise the step.")
                        % {"max": MAX_POINTS}
                    ]
                }
            )
        return {"panel": attrs["panel"], "start": start, "end": end, "step": step}


_PANEL_FIELDS = {
    "id": serializers.CharField(),
    "title": serializers.CharField(),
    "unit": serializers.CharField(help_text="reqps, percentunit (a ratio 0–1), s, cores, bytes or short."),
    "legends": serializers.ListField(
        child=serializers.CharField(),
        help_text="Each line's name: a literal, or {{label}} for one line per value of that label.",
    ),
}
PanelListSerializer = inline_serializer(
    "MetricsPanelList",
    {
        "enabled": serializers.BooleanField(
            help_text="False when the portal has no Prometheus (PROMETHEUS_URL)."
        ),
        "panels": serializers.ListField(child=inline_serializer("MetricsPanel", _PANEL_FIELDS)),
    },
)
PanelSeriesSerializer = inline_serializer(
    "MetricsPanelSeries",
    {
        "panel": serializers.CharField(),
        "title": serializers.CharField(),
        "unit": serializers.CharField(),
        "start": serializers.FloatField(help_text="Unix seconds."),
        "end": serializers.FloatField(help_text="Unix seconds."),
        "step": serializers.FloatField(help_text="Seconds between points."),
        "enabled": serializers.BooleanField(
            help_text="False when the portal has no Prometheus (PROMETHEUS_URL): then `series` is empty."
        ),
        "series": serializers.ListField(
            child=inline_serializer(
                "MetricsSeries",
                {
                    "name": serializers.CharField(),
                    "values": serializers.ListField(
                        child=serializers.ListField(
                            child=serializers.FloatField(allow_null=True), min_length=2, max_length=2
                        ),
                        help_text="[unix seconds, value]; null where Prometheus has NaN or ±Inf.",
                    ),
                },
            )
        ),
        "markers": serializers.ListField(
            child=inline_serializer(
                "MetricsMarker",
                {
                    "at": serializers.FloatField(help_text="Unix seconds."),
                    "kind": serializers.CharField(help_text="release, promotion or rollback."),
                    "outcome": serializers.CharField(help_text="running, succeeded or failed."),
                    "label": serializers.CharField(),
                    "url": serializers.CharField(help_text="The release's page."),
                },
            ),
            help_text="Releases, promotions and rollbacks of this environment in the range, oldest first.",
        ),
    },
)


class MetricsView(APIView):
    # A panel's series are read from Prometheus in the request: when it cannot answer, the one
    # handler's 502 (opsportal.api).
    remote_errors = True

    @extend_schema(
        tags=["environments"],
        summary="The monitoring panels of an environment, or one panel's series (with ?panel=)",
        description=(
            "Without `panel`: the panels (id, title, unit, legends). With `panel`: its series from "
            "Prometheus "
            f"between `start` and `end` (Unix seconds; default the last hour) every `step` seconds (default "
            f"about {TARGET_POINTS} points; at least {MIN_STEP} s, at most {MAX_POINTS} points, a range of "
            "at most 31 days), and the environment's release markers in that range. When the portal has no "
            "Prometheus, `enabled` is false and `series` empty. The expressions are the portal's own."
        ),
        parameters=[
            OpenApiParameter("panel", str, description="A panel id: " + ", ".join(p.id for p in PANELS)),
            OpenApiParameter("start", float, description="Unix seconds."),
            OpenApiParameter("end", float, description="Unix seconds."),
            OpenApiParameter("step", float, description="Seconds."),
        ],
        responses=PolymorphicProxySerializer(
            component_name="MetricsAnswer",
            serializers=[PanelListSerializer, PanelSeriesSerializer],
            resource_type_field_name=None,
        ),
    )
    def get(self, request, name: str, environment: str):
        ref = environment_selectors.environment_get(user=request.user, name=name, environment=environment)
        query = MetricsQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        if not data["panel"]:
            return Response({"enabled": selectors.monitoring_enabled(), "panels": selectors.panels_list()})
        panel = panel_get(data["panel"])
        return Response(
            selectors.panel_series(
                ref.environment, panel, start=data["start"], end=data["end"], step=data["step"]
            )
        )
