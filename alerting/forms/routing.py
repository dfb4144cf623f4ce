from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from alerting.choices import Mention, NoticeMethod, Severity
from alerting.models import Channel, Policy
from opsportal.notices import NoticeKind
from projects.choices import OPS_GROUP, Environment
from projects.models import Project, UserProfile


class PolicyForm(forms.Form):
    environment = forms.ChoiceField(label=_("Environment"), choices=Environment.choices)
    severity = forms.ChoiceField(label=_("Severity"), choices=Severity.choices)
    channels = forms.ModelMultipleChoiceField(
        label=_("Channels"),
        queryset=Channel.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )
    repeat_interval_minutes = Policy._meta.get_field("repeat_interval_minutes").formfield()
    quiet_start = forms.TimeField(
        label=_("Quiet hours start"), required=False, widget=forms.TimeInput(attrs={"type": "time"})
    )
    quiet_end = forms.TimeField(
        label=_("Quiet hours end"),
        required=False,
        widget=forms.TimeInput(attrs={"type": "time"}),
        help_text=_(
            "During quiet hours only critical alerts go out; the others wait and go out together at the end."
        ),
    )
    send_resolved = forms.BooleanField(label=_("Send resolved"), required=False, initial=True)
    mention = forms.ChoiceField(
        label=_("@-mention on critical"), choices=Mention.choices, initial=Mention.NONE
    )
    on_call = forms.ModelChoiceField(
        label=_("On-call person"), queryset=get_user_model().objects.none(), required=False
    )

    def __init__(self, *args, project: Project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["channels"].queryset = Channel.objects.filter(project=project)
        self.fields["on_call"].queryset = (
            get_user_model()
            .objects.filter(Q(memberships__project=project) | Q(groups__name=OPS_GROUP), is_active=True)
            .distinct()
            .order_by("username")
        )
        for name, field in self.fields.items():
            if name in ("channels",):
                continue
            if isinstance(field.widget, forms.CheckboxInput):
                field.widget.attrs.setdefault("class", "form-check-input")
            elif isinstance(field.widget, forms.Select):
                field.widget.attrs.setdefault("class", "form-select form-select-sm")
            else:
                field.widget.attrs.setdefault("class", "form-control form-control-sm")


class PreferencesForm(forms.Form):
    mobile = UserProfile._meta.get_field("mobile").formfield(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["mobile"].widget.attrs["class"] = "form-control form-control-sm"
        for kind, label in NoticeKind.choices:
            self.fields[f"kind_{kind}"] = forms.ChoiceField(
                label=label,
                choices=NoticeMethod.choices,
                widget=forms.Select(attrs={"class": "form-select form-select-sm"}),
            )

    def methods(self) -> dict[str, str]:
        return {kind: self.cleaned_data[f"kind_{kind}"] for kind in NoticeKind.values}
