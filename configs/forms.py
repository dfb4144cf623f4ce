from django import forms
from django.utils.translation import gettext_lazy as _

from configs.masking import is_secret_key
from configs.services.apollo import MAX_COMMENT, MAX_KEY, MAX_RELEASE_COMMENT, MAX_ROLLBACK_STEPS, MAX_TITLE
from opsportal.forms import WriteOnlyTextarea


def _style(form: forms.Form, small: bool = False) -> None:
    size = " form-control-sm" if small else ""
    for field in form.fields.values():
        if isinstance(field.widget, forms.HiddenInput):
            continue
        if isinstance(field, forms.BooleanField):
            css = "form-check-input"
        elif isinstance(field.widget, forms.Textarea):
            css = f"form-control font-monospace{size}"
        else:
            css = f"form-control{size}"
        field.widget.attrs.setdefault("class", css)


class ApolloSettingsForm(forms.Form):
    app_id = forms.CharField(label=_("Apollo app id"), max_length=128)
    cluster = forms.CharField(label=_("Apollo cluster"), max_length=64, initial="default")
    namespaces = forms.CharField(
        label=_("Namespaces"),
        initial="application",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One per line; non-properties namespaces with their suffix, e.g. redis.yml."),
    )
    test_env = forms.CharField(
        label=_("Apollo environment for test"), max_length=32, initial="FAT", help_text=_("e.g. FAT or DEV")
    )
    prod_env = forms.CharField(label=_("Apollo environment for production"), max_length=32, initial="PRO")
    token = forms.CharField(
        label=_("Open API token"),
        required=False,
        max_length=200,
        widget=forms.PasswordInput(
            attrs={"autocomplete": "new-password", "spellcheck": "false"}, render_value=False
        ),
        help_text=_(
            "The token of the app's third-party application (Apollo: Admin Tools → Open Platform), granted "
            "modify and release on the namespaces. Stored encrypted and never shown again: leave it blank "
            "to keep the stored one."
        ),
    )
    owner_may_edit_prod = forms.BooleanField(
        label=_("The project's owners may change and release production"),
        required=False,
        help_text=_("Only ops may turn this on. Otherwise production is changed by ops only."),
    )

    def __init__(self, *args, row=None, is_ops: bool = False, **kwargs):
        if row is not None:
            kwargs.setdefault(
                "initial",
                {
                    "app_id": row.app_id,
                    "cluster": row.cluster,
                    "namespaces": "\n".join(row.namespaces),
                    "test_env": row.test_env,
                    "prod_env": row.prod_env,
                    "owner_may_edit_prod": row.owner_may_edit_prod,
                },
            )
        super().__init__(*args, **kwargs)
        if not is_ops and not (row is not None and row.owner_may_edit_prod):
            # Owners may switch it off, never on: the field shows the setting without offering it.
            self.fields["owner_may_edit_prod"].disabled = True
        if row is None:
            self.fields["token"].help_text = _(
                "The token of the app's third-party application (Apollo: Admin Tools → Open Platform), "
                "granted modify and release on the namespaces. Stored encrypted and never shown again."
            )
        _style(self)


class ItemCreateForm(forms.Form):
    key = forms.CharField(label=_("Key"), max_length=MAX_KEY)
    value = forms.CharField(
        label=_("Value"), required=False, strip=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    comment = forms.CharField(label=_("Comment"), required=False, max_length=MAX_COMMENT)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if is_secret_key(self.data.get("key", "")):
            # Refused and shown again (the key exists, Apollo said no): a secret's value is not echoed.
            self.fields["value"].widget = WriteOnlyTextarea(attrs={"rows": 2, "autocomplete": "off"})
        _style(self, small=True)


class ItemEditForm(forms.Form):
    """An item's edit: the key and the version it was read at are hidden. A secret-looking key's value is
    write-only: its field starts empty, and left empty keeps the stored value."""

    key = forms.CharField(widget=forms.HiddenInput, max_length=MAX_KEY)
    version = forms.CharField(widget=forms.HiddenInput, max_length=64)
    value = forms.CharField(
        label=_("Value"), required=False, strip=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    comment = forms.CharField(label=_("Comment"), required=False, max_length=MAX_COMMENT)

    def __init__(self, *args, secret: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if secret:
            self.fields["value"].widget = WriteOnlyTextarea(attrs={"rows": 2, "autocomplete": "off"})
            self.fields["value"].help_text = _("A secret: it is not shown. Leave it empty to keep it.")
        _style(self, small=True)


class ItemDeleteForm(forms.Form):
    key = forms.CharField(widget=forms.HiddenInput, max_length=MAX_KEY)
    version = forms.CharField(widget=forms.HiddenInput, max_length=64)


class ReleaseForm(forms.Form):
    title = forms.CharField(label=_("Release title"), max_length=MAX_TITLE)
    comment = forms.CharField(label=_("Release comment"), required=False, max_length=MAX_RELEASE_COMMENT)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _style(self, small=True)


class RollbackForm(forms.Form):
    """Going back to an earlier release: Apollo undoes its latest release, one at a time, so the form
    carries the current release as the page showed it and the number of releases the user confirmed."""

    to_release = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    current = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    count = forms.IntegerField(
        label=_("Releases to undo"), min_value=1, max_value=MAX_ROLLBACK_STEPS, widget=forms.HiddenInput
    )
