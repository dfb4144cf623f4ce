from datetime import UTC

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from opsportal.errors import StateConflict


class WriteOnlyTextarea(forms.Textarea):
    """Never renders a value (a credential, a secret), not even the one just submitted when the form
    comes back with errors."""

    def format_value(self, value):
        return None


def add_service_errors(form, exc: ValidationError | StateConflict) -> None:
    """Show a service's refusal on a form: field errors on their fields, the rest (and a state conflict)
    on top."""
    if isinstance(exc, StateConflict):
        form.add_error(None, str(exc))
    elif hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def call_service(form, service, /, **kwargs):
    """Call a service on a form's behalf: its result, or None with its refusal shown on the form."""
    try:
        return service(**kwargs)
    except (ValidationError, StateConflict) as exc:
        add_service_errors(form, exc)
        return None


def service_error_message(exc: ValidationError | StateConflict) -> str:
    """A service's refusal as one sentence, for a flash message where there is no form."""
    return "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def version_field() -> forms.CharField:
    """The version of what the form was loaded with, sent back so a stale edit is refused (see
    opsportal.versions). Not required by the field: check_version puts a missing one on top of the form."""
    return forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)


def check_version(form, cleaned: dict) -> dict:
    """The clean() step of a form with a version_field: a form without one cannot be checked, so refuse."""
    if not cleaned.get("version"):
        form.add_error(None, _("This form is out of date or incomplete: reload the page and edit again."))
    return cleaned


class UTCDateTimeField(forms.DateTimeField):
    """A date and time stored as UTC. Python accepts UTC offsets up to ±23:59, PostgreSQL only up to
    ±15:59, so an offset such as +21:45 used to reach the database and fail there (a 500)."""

    def to_python(self, value):
        result = super().to_python(value)
        if result is None:
            return None
        try:
            return result.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValidationError(
                _("Enter a date and time between the years 1 and 9999."), code="invalid"
            ) from None
