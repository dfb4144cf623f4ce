from django import forms
from django.utils.translation import gettext_lazy as _

from alerting.choices import ChannelKind


class _SecretInput(forms.PasswordInput):
    """Never renders a stored or submitted secret (render_value=False), and no browser autofill."""

    def __init__(self):
        super().__init__(attrs={"autocomplete": "new-password", "spellcheck": "false"}, render_value=False)


class ChannelForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    kind = forms.ChoiceField(label=_("Kind"), choices=ChannelKind.choices)
    enabled = forms.BooleanField(label=_("Enabled"), required=False, initial=True)
    access_token = forms.CharField(
        label=_("DingTalk access token"),
        required=False,
        widget=_SecretInput(),
        help_text=_("The access_token of the robot's webhook URL. Stored encrypted and never shown again."),
    )
    signing_secret = forms.CharField(
        label=_("DingTalk signing secret"),
        required=False,
        widget=_SecretInput(),
        help_text=_("The robot's 加签 secret (SEC…). Leave blank on an edit to keep the stored one."),
    )
    keyword = forms.CharField(
        label=_("DingTalk keyword"),
        required=False,
        max_length=64,
        help_text=_("Only if the robot's security setting is a custom keyword: it is added to every title."),
    )
    key = forms.CharField(
        label=_("WeCom robot key"),
        required=False,
        widget=_SecretInput(),
        help_text=_("The key= of the robot's webhook URL. Stored encrypted and never shown again."),
    )
    recipients = forms.CharField(
        label=_("Email recipients"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One address per line."),
    )
    numbers = forms.CharField(
        label=_("SMS numbers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Mainland China mobile numbers, one per line."),
    )
    sign_name = forms.CharField(label=_("SMS sign name"), required=False, max_length=50)
    template_code = forms.CharField(
        label=_("SMS template code"),
        required=False,
        max_length=30,
        help_text=_(
            "An approved template; it may use ${service} ${env} ${severity} ${summary} ${link} ${project}."
        ),
    )

    def __init__(self, *args, channel=None, **kwargs):
        if channel is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": channel.name,
                    "kind": channel.kind,
                    "enabled": channel.enabled,
                    "keyword": channel.config.get("keyword", ""),
                    "recipients": "\n".join(channel.config.get("recipients", [])),
                    "numbers": "\n".join(channel.config.get("numbers", [])),
                    "sign_name": channel.config.get("sign_name", ""),
                    "template_code": channel.config.get("template_code", ""),
                },
            )
        super().__init__(*args, **kwargs)
        if channel is not None:
            self.fields["kind"].disabled = True  # a channel keeps its kind
