"""Cluster pages and API without a cluster: access, validation, write-only credentials, audit."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from clusters.models import Cluster
from clusters.services import clusters as services
from observability.models import AuditEvent

pytestmark = pytest.mark.django_db

TOKEN = "eyJhbGciOiJSUzI1NiJ9.super-secret-token-value"


@pytest.fixture
def cluster(people):
    return services.cluster_create(
        actor=people.ops,
        name="prod-east",
        environment="prod",
        api_url="https://10.1.2.3:6443",
        auth_type="token",
        credential=TOKEN,
    )


def all_urls(pk):
    return [
        ("get", reverse("cluster-list")),
        ("get", reverse("cluster-create")),
        ("post", reverse("cluster-create")),
        ("get", reverse("cluster-edit", args=[pk])),
        ("post", reverse("cluster-edit", args=[pk])),
        ("get", reverse("cluster-test-connection", args=[pk])),
        ("post", reverse("cluster-test-connection", args=[pk])),
        ("get", reverse("api-cluster-list")),
        ("post", reverse("api-cluster-list")),
        ("get", reverse("api-cluster-detail", args=[pk])),
        ("patch", reverse("api-cluster-detail", args=[pk])),
        ("put", reverse("api-cluster-detail", args=[pk])),
        ("post", reverse("api-cluster-test-connection", args=[pk])),
    ]


@pytest.mark.parametrize("who", ["developer", "owner", "qa", "outsider"])
def test_non_ops_get_404_on_every_cluster_page_and_endpoint(client, people, cluster, who):
    client.force_login(getattr(people, who))
    for method, url in all_urls(cluster.pk) + all_urls(cluster.pk + 1000):
        response = (
            getattr(client, method)(url, content_type="application/json")
            if "/api/" in url
            else (getattr(client, method)(url))
        )
        assert response.status_code == 404, (method, url, response.status_code)
    cluster.refresh_from_db()
    assert cluster.last_check_at is None
    assert Cluster.objects.count() == 1


def test_anonymous_is_sent_to_login_or_refused(client, cluster):
    assert client.get(reverse("cluster-list")).status_code == 302
    assert client.get(reverse("api-cluster-list")).status_code in (401, 403)


def test_ops_sees_list_and_edit_page_without_the_credential(client, people, cluster):
    client.force_login(people.ops)
    listing = client.get(reverse("cluster-list")).content.decode()
    assert "prod-east" in listing
    page = client.get(reverse("cluster-edit", args=[cluster.pk])).content.decode()
    assert "https://10.1.2.3:6443" in page
    assert TOKEN not in page
    assert "super-secret" not in page
    assert 'name="credential"' in page


def test_create_via_form_encrypts_and_audits_without_the_value(client, people):
    client.force_login(people.ops)
    response = client.post(
        reverse("cluster-create"),
        {
            "name": "test-a",
            "environment": "test",
            "api_url": "https://k8s.example.com:6443",
            "auth_type": "token",
            "credential": TOKEN,
            "verify_tls": "on",
            "namespace_template": "{project}-{environment}",
        },
    )
    assert response.status_code == 302
    cluster = Cluster.objects.get(name="test-a")
    assert cluster.credential == TOKEN
    event = AuditEvent.objects.get(verb="cluster.create")
    assert TOKEN not in json.dumps(event.changes)
    assert event.changes["summary"] == "credential set"
    assert event.changes["api_url"] == "https://k8s.example.com:6443"


@pytest.mark.parametrize(
    ("overrides", "field", "text"),
    [
        ({"name": "Bad_Name"}, "name", "lowercase"),
        ({"api_url": "ftp://x"}, "api_url", "http(s) URL"),
        ({"api_url": "not a url"}, "api_url", "http(s) URL"),
        ({"credential": ""}, "credential", "Paste a bearer token or a kubeconfig"),
        ({"credential": "two words"}, "credential", "token only"),
        ({"auth_type": "kubeconfig", "credential": "clusters: [unclosed"}, "credential", "not valid YAML"),
        ({"auth_type": "kubeconfig", "credential": "just: text"}, "credential", "not a kubeconfig"),
        ({"namespace_template": "{project}_{bad}"}, "namespace_template", "{project}"),
        ({"ca_certificate": "garbage"}, "ca_certificate", "PEM"),
    ],
)
def test_bad_form_input_gives_400_with_message_and_no_row(client, people, overrides, field, text):
    client.force_login(people.ops)
    data = {
        "name": "good",
        "environment": "test",
        "api_url": "https://k8s.example.com:6443",
        "auth_type": "token",
        "credential": TOKEN,
        "namespace_template": "{project}-{environment}",
        **overrides,
    }
    response = client.post(reverse("cluster-create"), data)
    assert response.status_code == 400
    assert text in " ".join(response.context["form"].errors.get(field, [])), response.context["form"].errors
    assert TOKEN not in response.content.decode()  # the credential is not echoed back
    assert not Cluster.objects.exists()
    assert not AuditEvent.objects.filter(verb="cluster.create").exists()


def test_duplicate_name_is_a_form_error(client, people, cluster):
    client.force_login(people.ops)
    response = client.post(
        reverse("cluster-create"),
        {
            "name": "prod-east",
            "environment": "prod",
            "api_url": "https://x.example.com",
            "auth_type": "token",
            "credential": "t",
            "namespace_template": "{project}",
        },
    )
    assert response.status_code == 400
    assert response.context["form"].errors["name"]
    assert Cluster.objects.count() == 1


def test_edit_with_blank_credential_keeps_it_and_audits_only_changes(client, people, cluster):
    client.force_login(people.ops)
    form = {
        "name": "prod-east",
        "environment": "prod",
        "api_url": "https://10.1.2.4:6443",
        "auth_type": "token",
        "credential": "",
        "verify_tls": "on",
        "namespace_template": "{project}-{environment}",
    }
    assert client.post(reverse("cluster-edit", args=[cluster.pk]), form).status_code == 302
    cluster.refresh_from_db()
    assert cluster.credential == TOKEN
    event = AuditEvent.objects.get(verb="cluster.update")
    assert event.changes == {"api_url": ["https://10.1.2.3:6443", "https://10.1.2.4:6443"]}

    form["credential"] = "new-token-value"
    assert client.post(reverse("cluster-edit", args=[cluster.pk]), form).status_code == 302
    cluster.refresh_from_db()
    assert cluster.credential == "new-token-value"
    latest = AuditEvent.objects.filter(verb="cluster.update").order_by("-id").first()
    assert latest.changes == {"summary": "credential changed"}
    assert "new-token-value" not in json.dumps(latest.changes)

    # Saving the same values again changes nothing and records nothing.
    form["credential"] = ""
    client.post(reverse("cluster-edit", args=[cluster.pk]), form)
    assert AuditEvent.objects.filter(verb="cluster.update").count() == 2


def test_changing_auth_type_needs_a_new_credential(client, people, cluster):
    client.force_login(people.ops)
    response = client.post(
        reverse("cluster-edit", args=[cluster.pk]),
        {
            "name": "prod-east",
            "environment": "prod",
            "api_url": "https://10.1.2.3:6443",
            "auth_type": "kubeconfig",
            "credential": "",
            "namespace_template": "{project}-{environment}",
        },
    )
    assert response.status_code == 400
    assert response.context["form"].errors["credential"]
    cluster.refresh_from_db()
    assert cluster.auth_type == "token"


def test_api_create_retrieve_update_credential_write_only(client, people):
    client.force_login(people.ops)
    response = client.post(
        reverse("api-cluster-list"),
        {
            "name": "api-one",
            "environment": "test",
            "api_url": "https://10.0.0.9:6443",
            "auth_type": "token",
            "credential": TOKEN,
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "credential" not in body
    pk = body["id"]
    for url in (reverse("api-cluster-list"), reverse("api-cluster-detail", args=[pk])):
        text = client.get(url).content.decode()
        assert "api-one" in text and TOKEN not in text and "credential" not in text

    response = client.patch(
        reverse("api-cluster-detail", args=[pk]), {"verify_tls": False}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["verify_tls"] is False
    assert Cluster.objects.get(pk=pk).credential == TOKEN


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "UPPER"}, "name"),
        ({"api_url": "nope"}, "api_url"),
        ({"credential": ""}, "credential"),
        ({"auth_type": "kubeconfig", "credential": "a: [b"}, "credential"),
        ({"environment": "staging"}, "environment"),
    ],
)
def test_api_bad_input_is_400_with_field_errors_and_no_row(client, people, payload, field):
    client.force_login(people.ops)
    data = {
        "name": "ok",
        "environment": "test",
        "api_url": "https://10.0.0.9:6443",
        "auth_type": "token",
        "credential": TOKEN,
        **payload,
    }
    response = client.post(reverse("api-cluster-list"), data, content_type="application/json")
    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "Invalid input."
    assert field in body["errors"], body
    assert TOKEN not in response.content.decode()
    assert not Cluster.objects.exists()


def test_clusters_are_in_the_openapi_schema_with_write_only_credential(client, people):
    client.force_login(people.ops)
    schema = client.get(reverse("api-schema") + "?format=json").json()
    assert "/api/clusters/" in schema["paths"]
    assert "/api/clusters/{id}/test-connection/" in schema["paths"]
    cluster_schema = schema["components"]["schemas"]["Cluster"]
    assert cluster_schema["properties"]["credential"]["writeOnly"] is True
    assert cluster_schema["properties"]["last_check_ok"]["readOnly"] is True


# A credential in the URL would be stored and shown in clear: refused everywhere, and never echoed.
URL_WITH_PASSWORD = "https://admin:s3cr3t-pw@k8s.example.com:6443"


def test_form_refuses_a_url_with_user_and_password(client, people):
    client.force_login(people.ops)
    data = {
        "name": "good",
        "environment": "test",
        "api_url": URL_WITH_PASSWORD,
        "auth_type": "token",
        "credential": TOKEN,
        "namespace_template": "{project}-{environment}",
    }
    response = client.post(reverse("cluster-create"), data)
    assert response.status_code == 400
    assert "must not contain a user name or password" in " ".join(response.context["form"].errors["api_url"])
    assert not Cluster.objects.exists()


def test_api_and_service_refuse_a_url_with_user_and_password(client, people, cluster):
    client.force_login(people.ops)
    data = {"name": "ok", "environment": "test", "api_url": URL_WITH_PASSWORD, "auth_type": "token"}
    response = client.post(
        reverse("api-cluster-list"), {**data, "credential": TOKEN}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "must not contain a user name or password" in str(response.json()["errors"]["api_url"])
    assert "s3cr3t-pw" not in response.content.decode()
    patched = client.patch(
        reverse("api-cluster-detail", args=[cluster.pk]),
        {"api_url": "https://user@k8s.example.com"},
        content_type="application/json",
    )
    assert patched.status_code == 400
    assert "api_url" in patched.json()["errors"]
    with pytest.raises(ValidationError) as refused:
        services.cluster_create(actor=people.ops, credential=TOKEN, **{**data, "name": "svc"})
    assert "must not contain a user name or password" in str(refused.value.message_dict["api_url"])
    assert list(Cluster.objects.values_list("pk", flat=True)) == [cluster.pk]


def test_monitoring_mode_is_chosen_on_the_form_and_kept_by_an_edit_without_it(client, people):
    client.force_login(people.ops)
    data = {
        "name": "operated",
        "environment": "test",
        "api_url": "https://k8s.example.com:6443",
        "auth_type": "token",
        "credential": TOKEN,
        "namespace_template": "{project}-{environment}",
    }
    assert (
        client.post(reverse("cluster-create"), {**data, "monitoring": "service_monitor"}).status_code == 302
    )
    cluster = Cluster.objects.get(name="operated")
    assert cluster.monitoring == "service_monitor"
    event = AuditEvent.objects.get(verb="cluster.create")
    assert event.changes["monitoring"] == "service_monitor"
    # A client that predates the field: the cluster keeps its mode.
    edit = {key: value for key, value in data.items() if key != "credential"}
    assert client.post(reverse("cluster-edit", args=[cluster.pk]), edit).status_code == 302
    cluster.refresh_from_db()
    assert cluster.monitoring == "service_monitor"
    bad = client.post(reverse("cluster-create"), {**data, "name": "other", "monitoring": "nagios"})
    assert bad.status_code == 400 and "monitoring" in bad.context["form"].errors
