"""What schemathesis relies on, stated for every operation at once: the schema documents each error a
view can give, and fields that answer null are nullable."""

import re

import pytest
import yaml
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db


def _api_views(patterns=None, prefix=""):
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _api_views(entry.url_patterns, route)
        elif isinstance(entry, URLPattern) and route.startswith("api/") and hasattr(entry.callback, "cls"):
            path = "/" + re.sub(r"<(?:[^>:]+:)?([^>]+)>", lambda m: "{" + m[1] + "}", route)
            yield path.replace("{pk}", "{id}"), entry.callback.cls


@pytest.fixture
def schema(client, people):
    client.force_login(people.ops)
    return yaml.safe_load(client.get("/api/schema/").content)


def _error_ref(operation, code):
    content = operation["responses"][code]["content"]["application/json"]["schema"]
    return content["$ref"]


def test_every_view_that_talks_to_another_system_documents_502_in_the_error_shape(schema):
    checked = 0
    for path, view in _api_views():
        if not getattr(view, "remote_errors", False):
            continue
        assert path in schema["paths"], path
        for method, operation in schema["paths"][path].items():
            assert "502" in operation["responses"], f"{method.upper()} {path} does not document 502"
            assert _error_ref(operation, "502") == "#/components/schemas/Error"
            checked += 1
    assert checked >= 6  # restart, scale, pod delete, pod logs, config get and put


def test_paginated_lists_and_ops_only_endpoints_document_404(schema):
    for path in ("/api/clusters/", "/api/audit-events/", "/api/tickets/", "/api/releases/"):
        assert "404" in schema["paths"][path]["get"]["responses"], path
    assert "404" in schema["paths"]["/api/clusters/"]["post"]["responses"]


@pytest.mark.parametrize(
    ("component", "field"),
    [
        ("Ticket", "cluster"),
        ("Ticket", "reviewed_by"),
        ("Release", "confirmed_by"),
        ("Release", "recipe_version"),
        ("Recipe", "created_by"),
        ("DeploymentRecord", "actor"),
        ("AuditEvent", "project"),
    ],
)
def test_fields_that_answer_null_are_nullable(schema, component, field):
    assert schema["components"]["schemas"][component]["properties"][field].get("nullable") is True


def test_blank_choices_of_read_only_model_fields_are_documented(schema):
    field = schema["components"]["schemas"]["TerminalGrant"]["properties"]["end_reason"]
    documented = set()
    for option in field.get("oneOf", [field]):
        target = option
        if "$ref" in option:
            target = schema["components"]["schemas"][option["$ref"].rsplit("/", 1)[1]]
        documented |= set(target.get("enum", []))
    assert "" in documented
