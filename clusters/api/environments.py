"""REST API of a running project environment: the same reads and actions as its page."""

from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.api.workload import secret_env_vars_field, workload_request_field
from clusters.choices import ConfigChangeStatus
from clusters.selectors import environments as selectors
from clusters.selectors.alert_rules import alert_rules_summary
from clusters.selectors.dashboards import dashboard_summary
from clusters.services import config_changes
from clusters.services import environments as services
from clusters.services.alert_rules import rules_enabled
from opsportal.http import client_address
from opsportal.versions import if_match_version
from projects.access import Action

MAX_TAIL = 100_000


class EnvironmentAPIView(APIView):
    # Every endpoint here reads or changes the cluster in the request: an unreachable or refusing
    # apiserver is the one handler's 502 (opsportal.api), declared in the schema by this flag.
    remote_errors = True


def _ref(request, kwargs, action: Action = Action.VIEW):
    return selectors.environment_get(
        user=request.user, name=kwargs["name"], environment=kwargs["environment"], action=action
    )


ConfigSerializer = inline_serializer(
    "EnvironmentConfig",
    {
        "request": serializers.DictField(),
        "overrides": serializers.DictField(),
        "secret_env_names": serializers.ListField(child=serializers.CharField()),
        "version": serializers.CharField(
            help_text="This configuration's version (the ETag of GET config/); send it back with an edit."
        ),
    },
)


_CHANGE_FIELDS = {
    "id": serializers.IntegerField(),
    # Not a ChoiceField: its enum would collide by name with the other "status" enums of the schema.
    "status": serializers.CharField(help_text="One of: " + ", ".join(ConfigChangeStatus.values)),
    "url": serializers.URLField(help_text="This change in the API."),
    "page_url": serializers.URLField(help_text="This change's page, which follows it live."),
    "actor": serializers.CharField(),
    "created_at": serializers.DateTimeField(),
    "started_at": serializers.DateTimeField(allow_null=True),
    "finished_at": serializers.DateTimeField(allow_null=True),
    "error": serializers.CharField(help_text="Why the change failed, and what to do; empty otherwise."),
}
_PLAN_FIELDS = {
    "changes": serializers.DictField(),
    "diff": serializers.CharField(),
    "guardrails": serializers.ListField(
        child=serializers.DictField(),
        help_text="What the portal's defaults protect against, and each override with its warning: "
        "code, level (info|warning), message, overridden.",
    ),
    "config": ConfigSerializer,
}
ConfigPlanSerializer = inline_serializer(
    "ConfigPlan",
    {
        "applied": serializers.BooleanField(
            help_text="Always false: a dry run, or an edit that changes nothing."
        ),
        **_PLAN_FIELDS,
    },
)
ConfigChangeQueuedSerializer = inline_serializer("ConfigChangeQueued", {**_CHANGE_FIELDS, **_PLAN_FIELDS})
ConfigChangeDetailSerializer = inline_serializer(
    "ConfigChangeDetail",
    {
        **_CHANGE_FIELDS,
        "changes": serializers.DictField(),
        "diff": serializers.CharField(),
        "progress": serializers.ListField(child=serializers.DictField()),
    },
)


DashboardSerializer = inline_serializer(
    "EnvironmentDashboard",
    {
        "status": serializers.ChoiceField(
            choices=["off", "none", "pending", "syncing", "synced", "failed"],
            help_text="off: Grafana is not configured; none: no dashboard requested yet; pending/syncing: "
            "being written (pending also while Grafana is unreachable); synced; failed (see error).",
        ),
        "url": serializers.CharField(allow_null=True, help_text="The dashboard in Grafana, once saved."),
        "error": serializers.CharField(help_text="Why the last sync failed or waits, or empty."),
        "version": serializers.IntegerField(allow_null=True, help_text="Grafana's version of the dashboard."),
        "uid": serializers.CharField(allow_null=True),
    },
)


AlertRuleFileSerializer = inline_serializer(
    "EnvironmentAlertRuleFile",
    {
        "status": serializers.CharField(
            help_text="off: the portal writes no rule files here; none: not written yet; pending: being "
            "written; applied: loaded by Prometheus; failed: not loaded (see error), the previous file runs."
        ),
        "error": serializers.CharField(help_text="Why the last write or reload failed, or empty."),
        "applied_at": serializers.DateTimeField(allow_null=True, help_text="The last successful load."),
    },
)


class EnvironmentDetailView(EnvironmentAPIView):
    state_conflicts = True  # a teardown that another one finished first

    @extend_schema(
        tags=["environments"],
        summary="Pods, Service, Deployment, HPA, recent events and configuration of an environment",
        responses=inline_serializer(
            "EnvironmentState",
            {
                "project": serializers.CharField(),
                "environment": serializers.CharField(),
                "namespace": serializers.CharField(),
                "cluster": serializers.CharField(),
                "pods": serializers.ListField(child=serializers.DictField()),
                "service": serializers.DictField(allow_null=True),
                "deployment": serializers.DictField(allow_null=True),
                "hpa": serializers.DictField(allow_null=True),
                "events": serializers.ListField(child=serializers.DictField()),
                "pod_warnings": serializers.ListField(
                    child=serializers.DictField(),
                    help_text="Warning events about the pods (Unhealthy, BackOff, Killing…), one per pod and "
                    "reason: pod, reason, count, message, last_seen.",
                ),
                "config": ConfigSerializer,
                "error": serializers.CharField(help_text="Why the cluster could not be read, or empty."),
                "dashboard": DashboardSerializer,
                "alert_rules": AlertRuleFileSerializer,
            },
        ),
    )
    def get(self, request, name: str, environment: str):
        ref = _ref(request, self.kwargs)
        return Response(
            {
                **selectors.environment_state(ref),
                "dashboard": dashboard_summary(ref.environment),
                "alert_rules": alert_rules_summary(ref.environment, enabled=rules_enabled()),
            }
        )

    @extend_schema(
        tags=["environments"],
        summary="Take the project out of this environment (ops): delete its objects, stop its monitoring",
        request=None,
        responses=inline_serializer(
            "EnvironmentTornDown", {"deleted": serializers.ListField(child=serializers.CharField())}
        ),
    )
    def delete(self, request, name: str, environment: str):
        deleted = services.environment_teardown(
            actor=request.user, ref=_ref(request, self.kwargs), remote_addr=client_address(request)
        )
        return Response({"deleted": deleted})


class RestartView(EnvironmentAPIView):
    @extend_schema(
        tags=["environments"],
        summary="Rolling restart of every pod (developers on test, ops on prod)",
        request=None,
        responses=inline_serializer("RestartDone", {"restarted_at": serializers.CharField()}),
    )
    def post(self, request, name: str, environment: str):
        ref = _ref(request, self.kwargs, selectors.operate_action(environment))
        stamp = services.environment_restart(actor=request.user, ref=ref, remote_addr=client_address(request))
        return Response({"restarted_at": stamp})


class ScaleView(EnvironmentAPIView):
    @extend_schema_serializer(component_name="EnvironmentScaleInput")
    class Input(serializers.Serializer):
        replicas = serializers.IntegerField(min_value=0)

    @extend_schema(
        tags=["environments"],
        summary="Set the replica count, within the autoscaler's range",
        request=Input,
        responses=inline_serializer("ScaleDone", {"replicas": serializers.IntegerField()}),
    )
    def post(self, request, name: str, environment: str):
        ref = _ref(request, self.kwargs, selectors.operate_action(environment))
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        replicas = services.environment_scale(
            actor=request.user,
            ref=ref,
            replicas=data.validated_data["replicas"],
            remote_addr=client_address(request),
        )
        return Response({"replicas": replicas})


class PodView(EnvironmentAPIView):
    @extend_schema(
        tags=["environments"], summary="Delete one pod; its ReplicaSet replaces it", responses={204: None}
    )
    def delete(self, request, name: str, environment: str, pod: str):
        ref = _ref(request, self.kwargs, selectors.operate_action(environment))
        services.environment_delete_pod(
            actor=request.user,
            ref=ref,
            pod=pod,
            remote_addr=client_address(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class PodLogsView(EnvironmentAPIView):
    class Query(serializers.Serializer):
        container = serializers.CharField(required=False, allow_blank=True, default="")
        tail = serializers.IntegerField(required=False, min_value=0, max_value=MAX_TAIL, default=1000)
        previous = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        tags=["environments"],
        summary="The last lines of a container's log as plain text (previous=true: the crashed one)",
        parameters=[
            OpenApiParameter("container", str),
            OpenApiParameter("tail", int),
            OpenApiParameter("previous", bool),
        ],
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    def get(self, request, name: str, environment: str, pod: str):
        ref = _ref(request, self.kwargs)
        query = self.Query(data=request.query_params)
        query.is_valid(raise_exception=True)
        text = services.pod_logs(actor=request.user, ref=ref, pod=pod, **query.validated_data)
        return HttpResponse(text, content_type="text/plain; charset=utf-8")


class ConfigView(EnvironmentAPIView):
    """The version is optional here and required on the page: the page posts every field, so a page loaded
    before another change would silently revert it; an API client usually sends only the fields it means
    to change (merged over the current ones), and one that reads, edits and writes back sends the version
    (or If-Match) to get the same protection as the page."""

    state_conflicts = True

    @extend_schema_serializer(component_name="EnvironmentConfigInput")
    class Input(serializers.Serializer):
        request = workload_request_field(
            partial=True, help_text="Request fields to change (merged over the current ones)."
        )
        overrides = serializers.DictField(
            required=False, allow_null=True, help_text="Guardrail overrides; when given, replaces them all."
        )
        secret_env_vars = secret_env_vars_field()
        dry_run = serializers.BooleanField(required=False, default=False)
        version = serializers.CharField(
            required=False,
            max_length=64,
            help_text=(
                "The configuration version the edit was made on (GET config/), or send it as If-Match. "
                "When given, a stale version is refused with 409 naming what changed; without it the edit "
                "is merged over the current configuration."
            ),
        )

    @extend_schema(
        tags=["environments"], summary="The configuration last applied", responses=ConfigSerializer
    )
    def get(self, request, name: str, environment: str):
        config = selectors.config_summary(_ref(request, self.kwargs))
        return Response(config, headers={"ETag": f'"{config["version"]}"'})

    @extend_schema(
        tags=["environments"],
        summary=(
            "Change the configuration (ops): validated and dry-run at once, then applied by the worker "
            "(202 with the change to follow); dry_run returns the diff against the live objects"
        ),
        request=Input,
        responses={200: ConfigPlanSerializer, 202: ConfigChangeQueuedSerializer},
    )
    def put(self, request, name: str, environment: str):
        ref = _ref(request, self.kwargs, Action.EDIT_CONFIG)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        args = {
            "actor": request.user,
            "ref": ref,
            "request": data.validated_data["request"],
            "overrides": data.validated_data.get("overrides"),
            "secret_env_vars": data.validated_data.get("secret_env_vars"),
            "version": data.validated_data.get("version") or if_match_version(request),
        }
        change = None
        if data.validated_data["dry_run"]:
            plan = services.config_plan(**args)
        else:
            plan, change = config_changes.config_change_create(remote_addr=client_address(request), **args)
        body = {
            "changes": plan.changes,
            "diff": plan.diff,
            "guardrails": [
                {"code": g.code, "level": g.level, "message": g.message, "overridden": g.overridden}
                for g in plan.guardrails
            ],
            "config": {
                "request": plan.request,
                "overrides": plan.overrides,
                "secret_env_names": plan.request.get("secret_env_names") or [],
                "version": selectors.config_version({"request": plan.request, "overrides": plan.overrides}),
            },
        }
        if change is None:
            return Response({"applied": False, **body})
        return Response({**_change_summary(request, ref, change), **body}, status=status.HTTP_202_ACCEPTED)


def _change_summary(request, ref, change) -> dict:
    args = [ref.project.name, ref.environment.environment, change.pk]
    return {
        "id": change.pk,
        "status": change.status,
        "url": request.build_absolute_uri(reverse("api-environment-config-change", args=args)),
        "page_url": request.build_absolute_uri(reverse("environment-config-change", args=args)),
        "actor": change.actor.get_username(),
        "created_at": change.created_at,
        "started_at": change.started_at,
        "finished_at": change.finished_at,
        "error": change.error,
    }


class ConfigChangeListView(APIView):
    @extend_schema(
        tags=["environments"],
        summary="The environment's latest configuration changes, newest first",
        responses=inline_serializer("ConfigChangeList", _CHANGE_FIELDS, many=True),
    )
    def get(self, request, name: str, environment: str):
        ref = _ref(request, self.kwargs)
        return Response([_change_summary(request, ref, c) for c in selectors.config_changes_list(ref)])


class ConfigChangeDetailView(APIView):
    @extend_schema(
        tags=["environments"],
        summary="One configuration change: status, progress log, outcome and the diff it applies",
        responses=ConfigChangeDetailSerializer,
    )
    def get(self, request, name: str, environment: str, pk: int):
        ref = _ref(request, self.kwargs)
        change = selectors.config_change_get(ref, pk)
        return Response(
            {
                **_change_summary(request, ref, change),
                "changes": change.changes,
                "diff": change.diff,
                "progress": change.progress,
            }
        )
