"""The Clusters page shows the local development cluster's progress through a settings hook, so the
application never imports the sandbox."""

import pytest
from django.urls import reverse

from sandbox.kube.cluster import dev_cluster_status

pytestmark = pytest.mark.django_db


def test_the_clusters_page_shows_the_hooks_progress(client, people, settings):
    settings.DEV_CLUSTER_STATUS = "tests.helpers.dev_cluster.building"
    client.force_login(people.ops)
    page = client.get(reverse("cluster-list")).content.decode()
    assert 'id="sandbox-cluster"' in page
    assert "building — compiling kube-apiserver" in page


def test_without_a_hook_there_is_no_banner(client, people, settings):
    settings.DEV_CLUSTER_STATUS = ""
    client.force_login(people.ops)
    assert 'id="sandbox-cluster"' not in client.get(reverse("cluster-list")).content.decode()


def test_the_sandbox_hook_reads_the_state_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("SANDBOX_KUBE_DIR", raising=False)
    assert dev_cluster_status() is None
    monkeypatch.setenv("SANDBOX_KUBE_DIR", str(tmp_path))
    assert dev_cluster_status().phase == "stopped"
