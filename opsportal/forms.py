from django import forms
from django.core.exceptions import ValidationError


class WriteOnlyTextarea(forms.Textarea):
    """Never renders a value (a credential, a secret), not even the one just submitted when the form
    comes back with errors."""

    def format_value(self, value):
        return None


def add_service_errors(form, exc: ValidationError) -> None:
    """Show a service's ValidationError on a form: field errors on their fields, the rest on top."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)
