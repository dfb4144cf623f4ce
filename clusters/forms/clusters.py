from django import forms
from django.utils.translation import gettext_lazy as _

from clusters.choices import DEFAULT_NAMESPACE_TEMPLATE, AuthType, ClusterMonitoring
from opsportal.forms import WriteOnlyTextarea
from projects.choices import Environment


class ClusterForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=63, help_text=_("Lowercase letters, digits and '-'."))
    environment = forms.ChoiceField(label=_("Environment"), choices=Environment.choices)
    api_url = forms.CharField(
        label=_("API URL"),
        max_length=255,
        required=False,
        help_text=_("e.g. https://10.0.0.1:6443. With a kubeconfig, empty means the kubeconfig's server."),
    )
    auth_type = forms.ChoiceField(
        label=_("Authentication"), choices=AuthType.choices, widget=forms.RadioSelect, initial=AuthType.TOKEN
    )
    credential = forms.CharField(
        label=_("Credential"),
        required=False,
        strip=True,
        widget=WriteOnlyTextarea(attrs={"rows": 6, "autocomplete": "off", "spellcheck": "false"}),
        help_text=_(
            "A bearer token, or a kubeconfig with embedded certificates "
            "(kubectl config view --raw --flatten --minify). Stored encrypted and never shown again."
        ),
    )
    ca_certificate = forms.CharField(
        label=_("CA certificate (PEM)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
    )
    verify_tls = forms.BooleanField(label=_("Verify the TLS certificate"), required=False, initial=True)
    monitoring = forms.ChoiceField(
        label=_("Monitoring"),
        choices=ClusterMonitoring.choices,
        initial=ClusterMonitoring.PORTAL,
        # Left out by a client that predates it: a new cluster gets the portal's, an edited one keeps its own.
        required=False,
        help_text=_(
            "With the Prometheus Operator, each environment gets a ServiceMonitor with its workload."
        ),
    )
    namespace_template = forms.CharField(
        label=_("Namespace template"),
        max_length=100,
        initial=DEFAULT_NAMESPACE_TEMPLATE,
        help_text=_("{project} and {environment} are replaced, e.g. orders-prod."),
    )

    eureka_url = forms.CharField(
        label=_("Eureka URL"),
        max_length=255,
        required=False,
        help_text=_(
            "The service URL the cluster's services register with, e.g. http://eureka:8761/eureka/. "
            "Environment pages then list their instances; empty: no Eureka."
        ),
    )

    def clean_monitoring(self):
        return self.cleaned_data.get("monitoring") or None

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.editing = editing
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.CheckboxInput | forms.RadioSelect):
                widget.attrs.setdefault("class", "form-check-input")
            elif isinstance(widget, forms.Select):
                widget.attrs.setdefault("class", "form-select")
            else:
                widget.attrs.setdefault(
                    "class",
                    "form-control font-monospace" if isinstance(widget, forms.Textarea) else "form-control",
                )
        if editing:
            self.fields["credential"].help_text = _(
                "Leave empty to keep the stored credential. It is stored encrypted and never shown."
            )

    def clean(self):
        cleaned = super().clean()
        if not self.editing and not cleaned.get("credential"):
            self.add_error("credential", _("Paste a bearer token or a kubeconfig."))
        return cleaned
