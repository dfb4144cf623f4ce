"""The Clusters page shows the local development cluster's progress through a settings hook, so the
application never imports the sandbox."""

import json

import pytest
from django.urls import reverse

from sandbox.kube.cluster import STATE_FILE, ClusterState, dev_cluster_status

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


def test_simulated_pods_show_a_banner_with_the_reason(client, people, settings):
    settings.DEV_CLUSTER_STATUS = "tests.helpers.dev_cluster.simulated"
    client.force_login(people.ops)
    page = client.get(reverse("cluster-list")).content.decode()
    assert 'id="sandbox-pods-simulated"' in page
    assert (
        "Pods are simulated (kwok): not running as root. Probes, preStop, limits and metrics are not" in page
    )
    assert 'id="sandbox-cluster"' not in page  # the cluster itself is ready
    client.post(reverse("set-language"), {"language": "zh-hans", "next": "/"})
    page = client.get(reverse("cluster-list")).content.decode()
    assert "not running as root" in page and "Probes, preStop" not in page


def test_real_pods_show_no_banner(client, people, settings):
    settings.DEV_CLUSTER_STATUS = "tests.helpers.dev_cluster.real"
    client.force_login(people.ops)
    assert 'id="sandbox-pods-simulated"' not in client.get(reverse("cluster-list")).content.decode()


def test_state_files_without_or_with_unknown_fields_still_read(tmp_path):
    (tmp_path / STATE_FILE).write_text(json.dumps({"phase": "ready", "message": "up", "pid": None}))
    old = ClusterState.read(tmp_path)
    # A state file from before the pod agent says nothing about its pods: no mode, so no banner either.
    assert (old.phase, old.pods_mode, old.pods_reason) == ("ready", "", "")
    ClusterState(phase="ready", pods_mode="simulated", pods_reason="no bwrap").write(tmp_path)
    data = json.loads((tmp_path / STATE_FILE).read_text())
    data["from_a_newer_sandbox"] = 1
    (tmp_path / STATE_FILE).write_text(json.dumps(data))
    new = ClusterState.read(tmp_path)
    assert (new.pods_mode, new.pods_reason) == ("simulated", "no bwrap")
