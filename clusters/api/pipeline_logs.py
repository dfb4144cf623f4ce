"""REST API twin of the environment page's "from the log pipeline" search."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from clusters.api.environments import EnvironmentAPIView
from clusters.selectors.environments import environment_get
from clusters.selectors.pipeline_logs import LEVELS, MAX_LIMIT, MAX_MINUTES, parse_search, pipeline_search

PipelineLinesSerializer = inline_serializer(
    "PipelineLogLine",
    {
        "time": serializers.CharField(help_text="The line's own time field, else the Kafka record's time."),
        "kafka_time": serializers.CharField(help_text="The Kafka record's timestamp (UTC)."),
        "level": serializers.CharField(help_text="One of " + ", ".join(LEVELS) + ", or empty."),
        "level_name": serializers.CharField(help_text="The level as the line wrote it."),
        "logger": serializers.CharField(),
        "msg": serializers.CharField(help_text="The message; the whole text for a line that is not JSON."),
        "fields": serializers.ListField(
            child=serializers.ListField(child=serializers.CharField()),
            help_text="The line's other fields as [name, value] pairs (values as JSON text).",
        ),
        "json": serializers.BooleanField(help_text="Whether the line is a JSON object."),
        "raw": serializers.CharField(help_text="The line as written (indented when JSON)."),
        "truncated": serializers.BooleanField(help_text="The line was longer than 64 KiB and is cut."),
        "partition": serializers.IntegerField(),
        "offset": serializers.IntegerField(),
    },
    many=True,
)


class PipelineLogsView(EnvironmentAPIView):
    @extend_schema(
        tags=["environments"],
        summary="Search the environment's log lines in the log pipeline (Kafka), newest first",
        description="The service's lines (Kafka records keyed logs:<project>:<environment>) of the last "
        "`minutes`, at or above `level`, containing `q` (case-insensitive), at most `limit`; `capped` says "
        "more lines matched. `enabled` is false (and `error` says why) when the cluster has no log pipeline. "
        "Bad parameters are a 400; Kafka unreachable is a 502.",
        parameters=[
            OpenApiParameter("minutes", OpenApiTypes.INT, description=f"1–{MAX_MINUTES}; 15 by default."),
            OpenApiParameter(
                "level", OpenApiTypes.STR, description="Lines at or above: " + ", ".join(LEVELS)
            ),
            OpenApiParameter("q", OpenApiTypes.STR, description="Text the line contains (case-insensitive)."),
            OpenApiParameter("limit", OpenApiTypes.INT, description=f"1–{MAX_LIMIT}; 200 by default."),
        ],
        responses=inline_serializer(
            "PipelineLogs",
            {
                "enabled": serializers.BooleanField(help_text="Whether the cluster has a log pipeline."),
                "error": serializers.CharField(help_text="Why nothing can be read, or empty."),
                "key": serializers.CharField(help_text="The record key of this service's lines."),
                "topic": serializers.CharField(),
                "kibana_url": serializers.CharField(help_text="The service's lines in Kibana, or empty."),
                "minutes": serializers.IntegerField(),
                "level": serializers.CharField(),
                "q": serializers.CharField(),
                "limit": serializers.IntegerField(),
                "capped": serializers.BooleanField(help_text="More lines matched than `limit`."),
                "complete": serializers.BooleanField(
                    help_text="False: the scan budget ran out before the window's start (older lines may "
                    "be missing)."
                ),
                "scanned": serializers.IntegerField(help_text="Kafka records read."),
                "lines": PipelineLinesSerializer,
            },
        ),
    )
    def get(self, request, name: str, environment: str):
        ref = environment_get(user=request.user, name=name, environment=environment)
        query = parse_search(request.query_params)
        return Response(pipeline_search(ref, query))
