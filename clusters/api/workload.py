"""Serializer fields for a workload request, shared by the ticket and the environment configuration API;
their schema comes from the field catalogue (clusters.workload.fields)."""

from django.utils.text import format_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clusters.workload import fields as workload_fields


def secret_env_vars_field() -> serializers.DictField:
    return serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=20000),
        required=False,
        write_only=True,
        help_text="Secret environment variables {NAME: value}, stored encrypted and never returned; names "
        'not given keep their value, an empty value ("") removes the name.',
    )


def request_serializer_field(entry: workload_fields.RequestField, *, partial: bool) -> serializers.Field:
    """The schema of a catalogue entry: type, bounds and help text, for the API documentation."""
    Kind = workload_fields.Kind
    blank = entry.blank != workload_fields.Blank.NOT_ALLOWED
    common = {
        "required": entry.required and not partial,
        "help_text": format_lazy("{}. {}", entry.label, entry.help_text) if entry.help_text else entry.label,
    }
    if entry.kind == Kind.INT:
        return serializers.IntegerField(
            min_value=entry.minimum, max_value=entry.maximum, allow_null=blank, **common
        )
    if entry.kind == Kind.BOOL:
        return serializers.BooleanField(**common)
    if entry.kind == Kind.CHOICE:
        return serializers.ChoiceField(choices=entry.choices, **common)
    if entry.kind == Kind.ENV_LINES:
        pair = serializers.ListField(child=serializers.CharField(), min_length=2, max_length=2)
        return serializers.ListField(child=pair, **common)
    return serializers.CharField(max_length=entry.max_length, allow_blank=blank, **common)


def workload_request_serializer(
    name: str, *, partial: bool, catalogue: tuple[workload_fields.RequestField, ...] | None = None
) -> type[serializers.Serializer]:
    """A serializer describing the request object, built from the catalogue."""
    fields = {
        entry.name: request_serializer_field(entry, partial=partial)
        for entry in workload_fields.entries(catalogue=catalogue)
    }
    return type(name, (serializers.Serializer,), fields)


WorkloadRequestSerializer = workload_request_serializer("WorkloadRequestSerializer", partial=False)
WorkloadRequestChangeSerializer = workload_request_serializer("WorkloadRequestChangeSerializer", partial=True)


def workload_request_field(*, partial: bool = False, **kwargs) -> serializers.DictField:
    """The ``request`` object of an API input. The schema shows its fields (from the catalogue); the
    services check the values, so the API and the forms report the same messages."""
    schema = WorkloadRequestChangeSerializer if partial else WorkloadRequestSerializer
    field_class = extend_schema_field(schema)(type("WorkloadRequestField", (serializers.DictField,), {}))
    return field_class(**kwargs)
