"""The Apollo API in the OpenAPI document: every operation, its input, and the errors it can answer."""

import pytest
import yaml
from django.core.management import call_command

NAMESPACE = "/api/projects/{name}/apollo/{environment}/{namespace}/"


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    with django_db_blocker.unblock():
        call_command("spectacular", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def test_every_apollo_operation_is_documented_with_its_errors(schema):
    paths = schema["paths"]
    expected = {
        "/api/projects/{name}/apollo/settings/": {"get", "patch"},
        NAMESPACE: {"get"},
        NAMESPACE + "items/": {"post"},
        NAMESPACE + "items/{key}": {"get", "put", "delete"},
        NAMESPACE + "releases/": {"get", "post"},
        NAMESPACE + "rollback/": {"post"},
    }
    for path, methods in expected.items():
        assert methods <= set(paths[path]), path
    for path, methods in expected.items():
        if path.endswith("settings/"):
            continue
        for method in methods:
            codes = set(paths[path][method]["responses"])
            # Apollo is called in the request (502), the namespace may be missing (404).
            assert {"403", "404", "502"} <= codes, (method, path, codes)
            if method in ("post", "put", "delete"):
                assert "409" in codes, (method, path)  # changed meanwhile, exists, release moved
    for method, path in [
        ("post", "items/"),
        ("put", "items/{key}"),
        ("post", "releases/"),
        ("post", "rollback/"),
    ]:
        body = paths[NAMESPACE + path][method]["requestBody"]["content"]["application/json"]["schema"]
        assert body["$ref"].startswith("#/components/schemas/Apollo"), (method, path)
    names = schema["components"]["schemas"]
    settings_input = names["PatchedApolloSettingsInput"]["properties"]
    assert settings_input["token"]["writeOnly"] is True
    assert "token" not in names["ApolloSettings"]["properties"]
    assert "has_token" in names["ApolloSettings"]["properties"]
    delete = paths[NAMESPACE + "items/{key}"]["delete"]
    assert [p["name"] for p in delete["parameters"] if p["in"] == "query"] == ["version"]
