"""Serializer fields for a workload request, shared by the ticket and the environment configuration API."""

from rest_framework import serializers


def secret_env_vars_field() -> serializers.DictField:
    return serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=20000),
        required=False,
        write_only=True,
        help_text="Secret environment variables {NAME: value}, stored encrypted and never returned; names "
        'not given keep their value, an empty value ("") removes the name.',
    )
