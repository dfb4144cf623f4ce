from django import forms
from django.utils.translation import gettext_lazy as _

from opsportal.forms import UTCDateTimeField


class AuditFilterForm(forms.Form):
    project = forms.CharField(label=_("Project"), required=False, max_length=63)
    actor = forms.CharField(label=_("User"), required=False, max_length=150)
    verb = forms.CharField(label=_("Action"), required=False, max_length=64)
    since = UTCDateTimeField(
        label=_("From"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = UTCDateTimeField(
        label=_("To"), required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            raise forms.ValidationError(_("'From' must be before 'To'."))
        return cleaned
