"""The alert rules of an environment in the API: the list (members) and a change to one rule (owners
and ops), the same as its page."""

from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from clusters.choices import AlertRule, AlertSeverity
from clusters.selectors import environments as selectors
from clusters.selectors.alert_rules import RuleRow, alert_rule_rows
from clusters.services.alert_rules import alert_rule_update, rules_enabled
from observability.monitoring.alert_rules import MAX_FOR_SECONDS
from opsportal.http import client_address
from projects.access import Action

SETTING_NAMES = ("enabled", "threshold", "for_seconds", "severity")


def _setting_fields() -> dict:
    # New field instances for each serializer: a field belongs to one serializer once bound.
    return {
        "enabled": serializers.BooleanField(),
        "threshold": serializers.FloatField(),
        "for_seconds": serializers.IntegerField(help_text="How long the condition holds before it fires."),
        # Not a ChoiceField: its enum would collide by name with the other "severity" enums of the schema.
        "severity": serializers.CharField(help_text="One of: " + ", ".join(AlertSeverity.values)),
    }


AlertRuleSerializer = inline_serializer(
    "EnvironmentAlertRule",
    {
        "rule": serializers.CharField(help_text="The alertname. One of: " + ", ".join(AlertRule.values)),
        "title": serializers.CharField(),
        "help": serializers.CharField(help_text="What the threshold means, with its unit."),
        **_setting_fields(),
        "minimum": serializers.FloatField(help_text="The lowest threshold allowed."),
        "maximum": serializers.FloatField(help_text="The highest threshold allowed."),
        "default": inline_serializer("EnvironmentAlertRuleDefault", _setting_fields()),
        "customized": serializers.BooleanField(help_text="The environment changed this rule's defaults."),
        "applied": serializers.BooleanField(
            help_text="The portal writes rule files for Prometheus here (false: settings kept, not loaded)."
        ),
    },
)


def _setting(setting) -> dict:
    return {f: getattr(setting, f) for f in SETTING_NAMES}


def _rule(row: RuleRow) -> dict:
    return {
        "rule": row.spec.alertname,
        "title": str(row.spec.title),
        "help": str(row.spec.help),
        **_setting(row.setting),
        "minimum": float(row.spec.minimum),
        "maximum": float(row.spec.maximum),
        "default": _setting(row.default),
        "customized": row.customized,
        "applied": rules_enabled(),
    }


def _ref(request, kwargs, action: Action = Action.VIEW):
    return selectors.environment_get(
        user=request.user, name=kwargs["name"], environment=kwargs["environment"], action=action
    )


class AlertRuleListView(APIView):
    @extend_schema(
        tags=["environments"],
        summary="The environment's six alert rules with their thresholds, durations and severities",
        responses=serializers.ListSerializer(child=AlertRuleSerializer),
    )
    def get(self, request, name: str, environment: str):
        ref = _ref(request, self.kwargs)
        return Response([_rule(row) for row in alert_rule_rows(ref.environment)])


class AlertRuleDetailView(APIView):
    @extend_schema_serializer(component_name="EnvironmentAlertRuleInput")
    class Input(serializers.Serializer):
        enabled = serializers.BooleanField(required=False)
        threshold = serializers.FloatField(required=False, help_text="Within the rule's minimum and maximum.")
        for_seconds = serializers.IntegerField(required=False, min_value=0, max_value=MAX_FOR_SECONDS)
        severity = serializers.CharField(
            required=False, max_length=16, help_text="One of: " + ", ".join(AlertSeverity.values)
        )

    def _row(self, ref, rule: str) -> RuleRow:
        row = next((r for r in alert_rule_rows(ref.environment) if r.spec.alertname == rule), None)
        if row is None:
            raise Http404("No such rule.")
        return row

    @extend_schema(
        tags=["environments"], summary="One alert rule of the environment", responses=AlertRuleSerializer
    )
    def get(self, request, name: str, environment: str, rule: str):
        ref = _ref(request, self.kwargs)
        return Response(_rule(self._row(ref, rule)))

    @extend_schema(
        tags=["environments"],
        summary=(
            "Change one alert rule (owners and ops): the fields sent are changed, checked with promtool, "
            "audited, and the environment's rule file is rewritten and reloaded by the worker"
        ),
        request=Input,
        responses=AlertRuleSerializer,
    )
    def patch(self, request, name: str, environment: str, rule: str):
        ref = _ref(request, self.kwargs, Action.EDIT_PROJECT)
        self._row(ref, rule)
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        alert_rule_update(
            environment=ref.environment,
            rule=rule,
            actor=request.user,
            remote_addr=client_address(request),
            **data.validated_data,
        )
        return Response(_rule(self._row(ref, rule)))
