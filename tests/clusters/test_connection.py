"""Test connection against the real local apiserver; the credential never leaks anywhere."""

import json
import logging

import pytest
from django.db import connection
from django.urls import reverse

from clusters.models import Cluster
from clusters.services import clusters as services
from observability.models import AuditEvent
from sandbox.kube.cluster import free_port
from tests.integrations.kube_helpers import ca_pem, inline_kubeconfig, service_account_token

pytestmark = [pytest.mark.kube, pytest.mark.django_db]


def secret_bits(kubeconfig_text: str) -> list[str]:
    """Distinctive pieces of a credential that must never show up outside the encrypted column."""
    import yaml

    user = yaml.safe_load(kubeconfig_text)["users"][0]["user"]
    return [user["client-key-data"][20:80], user["client-certificate-data"][40:100]]


def assert_nowhere(bits, *texts):
    for bit in bits:
        for text in texts:
            assert bit not in text


def test_kubeconfig_cluster_via_pages_shows_version_and_never_leaks(client, people, kube_cluster, caplog):
    caplog.set_level(logging.DEBUG)
    kubeconfig = inline_kubeconfig(kube_cluster.kubeconfig)
    bits = secret_bits(kubeconfig)
    client.force_login(people.ops)
    created = client.post(
        reverse("cluster-create"),
        {
            "name": "local",
            "environment": "test",
            "api_url": "",  # taken from the kubeconfig
            "auth_type": "kubeconfig",
            "credential": kubeconfig,
            "verify_tls": "on",
            "namespace_template": "{project}-{environment}",
        },
    )
    assert created.status_code == 302
    cluster = Cluster.objects.get(name="local")
    assert cluster.api_url == kube_cluster.cluster.server

    response = client.post(reverse("cluster-test-connection", args=[cluster.pk]), HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'data-ok="true"' in page
    assert "v1.34" in page and "admin" in page
    cluster.refresh_from_db()
    assert cluster.last_check_ok is True and cluster.server_version.startswith("v1.34")

    edit_page = client.get(reverse("cluster-edit", args=[cluster.pk])).content.decode()
    api_detail = client.get(reverse("api-cluster-detail", args=[cluster.pk])).content.decode()
    api_check = client.post(reverse("api-cluster-test-connection", args=[cluster.pk])).content.decode()
    assert json.loads(api_check)["ok"] is True
    audit = json.dumps(list(AuditEvent.objects.values("changes", "target_repr")))
    with connection.cursor() as cursor:
        cursor.execute("SELECT credential FROM clusters_cluster WHERE id = %s", [cluster.pk])
        (raw,) = cursor.fetchone()
    assert "BEGIN" not in raw and "client-key-data" not in raw
    assert_nowhere(
        bits + ["client-key-data"], page, edit_page, api_detail, api_check, audit, raw, caplog.text
    )
    verbs = AuditEvent.objects.filter(target_type="clusters.cluster").values_list("verb", flat=True)
    assert sorted(verbs) == ["cluster.create", "cluster.test_connection", "cluster.test_connection"]


def test_token_cluster_connection_and_rejected_token(people, kube_cluster, kube_namespace, caplog):
    # The helper's TokenRequest is logged by the kubernetes client at DEBUG; capture only the portal.
    token = service_account_token(kube_cluster.api_client, kube_namespace)
    caplog.set_level(logging.DEBUG)
    cluster = services.cluster_create(
        actor=people.ops,
        name="local-token",
        environment="prod",
        api_url=kube_cluster.cluster.server,
        ca_certificate=ca_pem(kube_cluster.kubeconfig),
        auth_type="token",
        credential=token,
    )
    result = services.cluster_test_connection(actor=people.ops, cluster=cluster)
    assert result.ok, result
    assert result.user == f"system:serviceaccount:{kube_namespace}:portal"

    services.cluster_update(actor=people.ops, cluster=cluster, credential="revoked-or-wrong-token")
    result = services.cluster_test_connection(actor=people.ops, cluster=cluster)
    assert not result.ok
    assert result.error == "Unauthorized"
    assert "credential" in result.next_step
    cluster.refresh_from_db()
    assert cluster.last_check_ok is False
    audit = json.dumps(list(AuditEvent.objects.values("changes")))
    assert_nowhere([token[-40:], "revoked-or-wrong-token"], audit, caplog.text, result.message)


def test_dead_port_shows_unreachable_with_cause_and_next_step(client, people):
    cluster = services.cluster_create(
        actor=people.ops,
        name="gone",
        environment="test",
        api_url=f"https://127.0.0.1:{free_port()}",
        auth_type="token",
        credential="whatever",
        verify_tls=False,
    )
    client.force_login(people.ops)
    response = client.post(reverse("cluster-test-connection", args=[cluster.pk]), HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert 'data-ok="false"' in page
    assert "Unreachable" in page and "Connection refused" in page
    assert "firewall" in page  # the next step
    event = AuditEvent.objects.get(verb="cluster.test_connection")
    assert event.changes["ok"] is False and "refused" in event.changes["message"]


def test_wrong_ca_suggests_checking_the_certificate(people, kube_cluster):
    # No CA given: the local cluster's self-signed CA is not among the system's trusted roots.
    cluster = services.cluster_create(
        actor=people.ops,
        name="wrong-ca",
        environment="test",
        api_url=kube_cluster.cluster.server,
        auth_type="token",
        credential="t",
    )
    result = services.cluster_test_connection(actor=people.ops, cluster=cluster)
    assert not result.ok
    assert result.error == "Unreachable"
    assert "CA certificate" in result.next_step
