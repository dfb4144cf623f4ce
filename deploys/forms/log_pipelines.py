from django import forms
from django.utils.translation import gettext_lazy

_TEXT = {"class": "form-control"}


class PipelineForm(forms.Form):
    """A cluster's log pipeline settings; every rule is checked once, by the service."""

    kafka_bootstrap_servers = forms.CharField(
        label=gettext_lazy("Kafka bootstrap servers"),
        max_length=500,
        help_text=gettext_lazy("As the proxy's pods reach Kafka: host:port, comma-separated."),
        widget=forms.TextInput(attrs=_TEXT),
    )
    portal_bootstrap_servers = forms.CharField(
        label=gettext_lazy("Kafka bootstrap servers for the portal"),
        max_length=500,
        required=False,
        help_text=gettext_lazy("As the portal's workers reach the same Kafka; empty: the same."),
        widget=forms.TextInput(attrs=_TEXT),
    )
    default_topic = forms.CharField(
        label=gettext_lazy("Default topic"),
        max_length=249,
        initial="app-logs",
        widget=forms.TextInput(attrs=_TEXT),
    )
    topic_mapping = forms.CharField(
        label=gettext_lazy("Topic mapping"),
        required=False,
        max_length=20000,
        help_text=gettext_lazy("One rule a line: key-pattern=topic, e.g. logs:orders:*=orders-logs."),
        widget=forms.Textarea(attrs={**_TEXT, "rows": 4}),
    )
    password = forms.CharField(
        label=gettext_lazy("Proxy password"),
        required=False,
        max_length=500,
        strip=False,
        help_text=gettext_lazy("Write-only: leave empty to keep the current one."),
        widget=forms.PasswordInput(attrs={**_TEXT, "autocomplete": "new-password"}),
    )
    clear_password = forms.BooleanField(label=gettext_lazy("Remove the password"), required=False)
    namespace = forms.CharField(
        label=gettext_lazy("Namespace"),
        max_length=63,
        initial="opsportal-logging",
        widget=forms.TextInput(attrs=_TEXT),
    )
    service_address = forms.CharField(
        label=gettext_lazy("Address for services"),
        max_length=255,
        required=False,
        help_text=gettext_lazy("host:port as the services reach the proxy; empty: the Service's DNS name."),
        widget=forms.TextInput(attrs=_TEXT),
    )
    min_replicas = forms.IntegerField(
        label=gettext_lazy("Minimum replicas"), initial=2, widget=forms.NumberInput(attrs=_TEXT)
    )
    max_replicas = forms.IntegerField(
        label=gettext_lazy("Maximum replicas"), initial=6, widget=forms.NumberInput(attrs=_TEXT)
    )
    kibana_url = forms.CharField(
        label=gettext_lazy("Kibana link"),
        max_length=500,
        required=False,
        help_text=gettext_lazy("{project}, {environment}, {key} and {topic} are filled in."),
        widget=forms.TextInput(attrs=_TEXT),
    )
