"""The form of one alert rule on an environment's alert rules page."""

from django import forms
from django.utils.translation import gettext_lazy as _

from clusters.choices import AlertSeverity
from observability.monitoring.alert_rules import MAX_FOR_SECONDS


class AlertRuleForm(forms.Form):
    enabled = forms.BooleanField(label=_("Enabled"), required=False)
    threshold = forms.FloatField(label=_("Threshold"))
    # Ranges per rule are the service's (it names them in its message); the form only parses.
    for_seconds = forms.IntegerField(label=_("For (seconds)"), min_value=0, max_value=MAX_FOR_SECONDS)
    severity = forms.ChoiceField(label=_("Severity"), choices=AlertSeverity.choices)

    def __init__(self, *args, rule: str, read_only: bool = False, **kwargs):
        super().__init__(*args, prefix=rule, **kwargs)
        for field in self.fields.values():
            field.disabled = read_only
            field.widget.attrs["class"] = (
                "form-check-input"
                if isinstance(field, forms.BooleanField)
                else "form-control form-control-sm"
            )
        self.fields["severity"].widget.attrs["class"] = "form-select form-select-sm"
        self.fields["threshold"].widget.attrs["step"] = "any"
