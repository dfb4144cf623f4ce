"""The environment page, its actions, configuration edits, logs and API, against the real control plane."""

import pytest
from django.urls import reverse
from kubernetes import client as k8s

from clusters.choices import ConfigChangeStatus
from clusters.models import ConfigChange, ProjectEnvironment
from observability.models import AuditEvent
from tests.helpers.environments import config_post, pod_names, provision
from tests.polling import until

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture
def env(people, local_clusters):
    return provision(people, local_clusters["test"])


def page_url(env) -> str:
    return reverse("environment-page", args=[env.project.name, env.environment])


def api_url(env, suffix: str = "") -> str:
    return f"/api/projects/{env.project.name}/environments/{env.environment}/{suffix}"


# --- the page -------------------------------------------------------------------------------------------


def test_page_shows_pods_service_autoscaler_and_events(client, people, env, kube_cluster):
    client.force_login(people.developer)
    response = client.get(page_url(env))
    assert response.status_code == 200
    html = response.content.decode()
    pods = pod_names(kube_cluster, env.namespace)
    assert len(pods) == 2
    for pod in pods:
        assert f'data-pod="{pod}"' in html
    state = response.context["state"]
    assert state["error"] == ""
    assert {p["phase"] for p in state["pods"]} == {"Running"}
    assert all(p["ready"] and p["node"].startswith("kwok-node-") for p in state["pods"])
    assert state["service"]["type"] == "ClusterIP" and state["service"]["cluster_ip"]
    assert state["service"]["ports"][0]["port"] == 80
    assert (state["hpa"]["min_replicas"], state["hpa"]["max_replicas"]) == (2, 5)
    assert state["hpa"]["metrics"][0]["name"] == "cpu"
    assert state["deployment"]["rollout"]["state"] == "complete"
    assert any(e["reason"] == "ScalingReplicaSet" for e in state["events"])
    assert 'id="restart-button"' in html  # developers may operate the test environment
    assert f"ws/environments/{env.project.name}/test/" in html


def test_project_page_links_the_environment(client, people, env):
    client.force_login(people.viewer)
    response = client.get(reverse("project-detail", args=["orders"]) + "?tab=environments")
    assert f'href="{page_url(env)}"' in response.content.decode()


def test_outsiders_get_404_and_viewers_get_no_actions(client, people, env):
    client.force_login(people.outsider)
    assert client.get(page_url(env)).status_code == 404
    assert client.get(api_url(env)).status_code == 404
    assert client.post(reverse("environment-restart", args=["orders", "test"])).status_code == 404
    client.force_login(people.developer)
    assert client.get(reverse("environment-page", args=["orders", "prod"])).status_code == 404  # not there
    assert client.get(reverse("environment-page", args=["orders", "staging"])).status_code == 404
    client.force_login(people.viewer)
    response = client.get(page_url(env))
    assert response.status_code == 200
    assert 'id="restart-button"' not in response.content.decode()
    assert client.post(reverse("environment-restart", args=["orders", "test"])).status_code == 403
    assert client.post(api_url(env, "restart/")).status_code == 403
    assert not AuditEvent.objects.filter(verb__startswith="environment.").exists()


def test_production_actions_are_for_ops_only(client, people, env, local_clusters):
    prod = ProjectEnvironment.objects.create(
        project=people.project, environment="prod", cluster=local_clusters["prod"], namespace=env.namespace
    )
    client.force_login(people.developer)
    assert client.post(api_url(prod, "restart/")).status_code == 403
    assert (
        client.post(api_url(prod, "scale/"), {"replicas": 3}, content_type="application/json").status_code
        == 403
    )
    assert 'id="restart-button"' not in client.get(page_url(prod)).content.decode()


# --- actions --------------------------------------------------------------------------------------------


def test_restart_sets_restarted_at_and_is_audited(client, people, env, kube_cluster):
    client.force_login(people.developer)
    response = client.post(reverse("environment-restart", args=["orders", "test"]), REMOTE_ADDR="10.9.8.7")
    assert response.status_code == 200, response.content
    assert 'data-ok="true"' in response.content.decode()
    deployment = k8s.AppsV1Api(kube_cluster.api_client).read_namespaced_deployment("orders", env.namespace)
    stamp = deployment.spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]
    event = AuditEvent.objects.get(verb="environment.restart")
    assert event.actor == people.developer and event.project == people.project
    assert event.changes == {"restartedAt": [None, stamp]} and event.remote_addr == "10.9.8.7"


def test_scale_within_the_autoscaler_range_and_refused_outside(client, people, env, kube_cluster):
    client.force_login(people.developer)
    url = reverse("environment-scale", args=["orders", "test"])
    refused = client.post(url, {"replicas": "9"})
    assert refused.status_code == 400
    assert "is outside the autoscaler" in refused.content.decode()
    assert "range 2–5" in refused.content.decode()
    # HTMX swaps only 2xx answers, so the page gets the refusal as a 200 with the message.
    htmx = client.post(url, {"replicas": "9"}, HTTP_HX_REQUEST="true")
    assert htmx.status_code == 200 and 'data-ok="false"' in htmx.content.decode()
    assert client.post(url, {"replicas": "lots"}).status_code == 400
    assert not AuditEvent.objects.filter(verb="environment.scale").exists()

    assert client.post(url, {"replicas": "4"}).status_code == 200
    apps = k8s.AppsV1Api(kube_cluster.api_client)
    assert apps.read_namespaced_deployment("orders", env.namespace).spec.replicas == 4
    assert AuditEvent.objects.get(verb="environment.scale").changes == {"replicas": [2, 4]}

    api = client.post(api_url(env, "scale/"), {"replicas": 1}, content_type="application/json")
    assert api.status_code == 400 and "outside" in str(api.json())
    assert (
        client.post(api_url(env, "scale/"), {"replicas": "x"}, content_type="application/json").status_code
        == 400
    )
    assert client.post(api_url(env, "scale/"), {}, content_type="application/json").status_code == 400


def test_delete_one_pod(client, people, env, kube_cluster):
    client.force_login(people.developer)
    victim = pod_names(kube_cluster, env.namespace)[0]
    response = client.post(reverse("environment-delete-pod", args=["orders", "test", victim]))
    assert response.status_code == 200, response.content
    until("the pod to go", lambda: victim not in pod_names(kube_cluster, env.namespace))
    assert AuditEvent.objects.get(verb="environment.pod.delete").changes == {"pod": [victim, None]}
    # A pod that is not the environment's is refused, through the page and the API.
    assert (
        client.post(reverse("environment-delete-pod", args=["orders", "test", "kube-apiserver"])).status_code
        == 400
    )
    assert client.delete(api_url(env, "pods/nope/")).status_code == 400
    other = pod_names(kube_cluster, env.namespace)[0]
    assert client.delete(api_url(env, f"pods/{other}/")).status_code == 204


# --- configuration --------------------------------------------------------------------------------------


def _resource_versions(kube_cluster, namespace):
    api = kube_cluster.api_client
    return (
        k8s.AppsV1Api(api).read_namespaced_deployment("orders", namespace).metadata.resource_version,
        k8s.AutoscalingV2Api(api)
        .read_namespaced_horizontal_pod_autoscaler("orders", namespace)
        .metadata.resource_version,
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"cpu_request": "1 core"}, "is not a Kubernetes quantity"),
        ({"hpa_min": "6", "hpa_max": "3"}, ""),
        ({"memory_limit": "256Mi"}, ""),  # below the 512Mi request
    ],
)
def test_invalid_config_edits_change_nothing(client, people, env, kube_cluster, changes, message):
    client.force_login(people.ops)
    before = _resource_versions(kube_cluster, env.namespace)
    url = reverse("environment-config", args=["orders", "test"])
    for step in ("preview", "apply"):
        response = client.post(url, {**config_post(env, **changes), "step": step})
        assert response.status_code == 400
        assert message in response.content.decode()
    env_after = ProjectEnvironment.objects.get(pk=env.pk)
    assert env_after.spec == env.spec
    assert _resource_versions(kube_cluster, env.namespace) == before
    assert not AuditEvent.objects.filter(verb="environment.config.update").exists()
    assert not ConfigChange.objects.exists()
    api = client.put(
        api_url(env, "config/"),
        {"request": {k: v for k, v in changes.items() if k != "memory_limit"} or {"memory_limit": "256Mi"}},
        content_type="application/json",
    )
    assert api.status_code == 400


def test_config_edit_previews_the_diff_then_applies_and_audits(
    client, people, env, kube_cluster, django_capture_on_commit_callbacks
):
    client.force_login(people.ops)
    url = reverse("environment-config", args=["orders", "test"])
    assert client.get(url).status_code == 200
    before = _resource_versions(kube_cluster, env.namespace)
    edit = config_post(env, hpa_max="8", memory_request="768Mi", env_vars="LOG_LEVEL=debug")
    preview = client.post(url, {**edit, "knob-probe_timeout_seconds": "5", "step": "preview"})
    assert preview.status_code == 200, preview.content
    diff = preview.context["plan"].diff
    assert "-  maxReplicas: 5" in diff and "+  maxReplicas: 8" in diff
    assert "768Mi" in diff and "value: debug" in diff
    assert _resource_versions(kube_cluster, env.namespace) == before  # a preview applies nothing
    assert ProjectEnvironment.objects.get(pk=env.pk).spec == env.spec

    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(url, {**edit, "knob-probe_timeout_seconds": "5", "step": "apply"})
    assert response.status_code == 302
    # The request records the change; the worker applies it.
    assert ConfigChange.objects.get().status == ConfigChangeStatus.QUEUED
    assert run_change(ConfigChange.objects.get()).status == ConfigChangeStatus.APPLIED
    api = kube_cluster.api_client
    hpa = k8s.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("orders", env.namespace)
    assert hpa.spec.max_replicas == 8
    deployment = k8s.AppsV1Api(api).read_namespaced_deployment("orders", env.namespace)
    container = deployment.spec.template.spec.containers[0]
    assert container.resources.requests["memory"] == "768Mi"
    assert container.readiness_probe.timeout_seconds == 5
    assert deployment.spec.replicas == 2  # the live scale is kept
    managers = {m.manager for m in deployment.metadata.managed_fields}
    assert "opsportal" in managers
    saved = ProjectEnvironment.objects.get(pk=env.pk).spec
    assert saved["request"]["hpa_max"] == 8 and saved["request"]["env_vars"] == [["LOG_LEVEL", "debug"]]
    assert saved["overrides"] == {"probe_timeout_seconds": 5}
    event = AuditEvent.objects.get(verb="environment.config.update")
    assert event.actor == people.ops
    assert event.changes["hpa_max"] == [5, 8]
    assert event.changes["overrides.probe_timeout_seconds"] == [None, 5]
    assert "maxReplicas" in event.changes["diff"]


def test_config_is_read_only_for_non_ops(client, people, env):
    client.force_login(people.developer)
    url = reverse("environment-config", args=["orders", "test"])
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="config-read-only"' in html and 'id="config-apply"' not in html and "disabled" in html
    assert client.post(url, {**config_post(env), "step": "apply"}).status_code == 403
    assert client.get(api_url(env, "config/")).json()["request"]["hpa_max"] == 5
    assert (
        client.put(api_url(env, "config/"), {"request": {}}, content_type="application/json").status_code
        == 403
    )


def test_config_api_dry_run_returns_the_diff_and_put_applies(
    client, people, env, kube_cluster, django_capture_on_commit_callbacks
):
    client.force_login(people.ops)
    before = _resource_versions(kube_cluster, env.namespace)
    dry = client.put(
        api_url(env, "config/"),
        {"request": {"hpa_min": 3, "replicas": 3}, "dry_run": True},
        content_type="application/json",
    )
    assert dry.status_code == 200, dry.content
    body = dry.json()
    assert body["applied"] is False and body["changes"] == {"hpa_min": [2, 3], "replicas": [2, 3]}
    assert "+  minReplicas: 3" in body["diff"]
    assert _resource_versions(kube_cluster, env.namespace) == before
    bad = client.put(
        api_url(env, "config/"), {"request": {"hpa_min": "three"}}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert (
        client.put(api_url(env, "config/"), {"request": []}, content_type="application/json").status_code
        == 400
    )
    refused = client.put(
        api_url(env, "config/"), {"request": {"hpa_min": 3}}, content_type="application/json"
    )
    assert refused.status_code == 400 and "autoscaling range" in str(refused.json())
    assert not ConfigChange.objects.exists()  # neither a dry run nor a refused edit records a change
    with django_capture_on_commit_callbacks(execute=False):
        done = client.put(
            api_url(env, "config/"),
            {"request": {"hpa_min": 3, "replicas": 3}},
            content_type="application/json",
        )
    assert done.status_code == 202 and done.json()["status"] == "queued"
    assert run_change(done.json()["id"]).status == ConfigChangeStatus.APPLIED
    hpa = k8s.AutoscalingV2Api(kube_cluster.api_client).read_namespaced_horizontal_pod_autoscaler(
        "orders", env.namespace
    )
    assert hpa.spec.min_replicas == 3


# --- logs -----------------------------------------------------------------------------------------------


def test_log_download_tail_previous_and_search_link(client, people, env, kube_cluster, settings):
    settings.OPSPORTAL_LOG_SEARCH_URL_TEMPLATE = (
        "https://kibana.example.com/app/discover#/?q=kubernetes.pod.name:{pod} AND ns:{namespace}&p={project}"
    )
    pod = pod_names(kube_cluster, env.namespace)[0]
    kube_cluster.cluster.set_pod_logs(env.namespace, pod, [f"line {n}" for n in range(1, 11)])
    client.force_login(people.viewer)
    url = reverse("environment-logs-download", args=["orders", "test", pod])

    def tail_of_three():
        response = client.get(url, {"tail": "3"})
        return response if response.content.decode() == "line 8\nline 9\nline 10\n" else None

    response = until("kwok to serve the pod's log", tail_of_three)
    assert response["Content-Type"].startswith("text/plain")
    assert f'filename="{pod}.log"' in response["Content-Disposition"]
    api = client.get(api_url(env, f"pods/{pod}/logs/"), {"tail": "2", "container": "app"})
    assert api.status_code == 200 and api.content.decode() == "line 9\nline 10\n"

    previous = client.get(api_url(env, f"pods/{pod}/logs/"), {"previous": "true"})
    # The apiserver's 400 message is passed on (kwok words it differently from a kubelet).
    assert previous.status_code == 400
    assert "log" in previous.json()["detail"]
    assert client.get(url, {"previous": "1"}).status_code == 400
    assert client.get(url, {"tail": "-1"}).status_code == 400
    assert client.get(api_url(env, f"pods/{pod}/logs/"), {"tail": "x"}).status_code == 400
    assert client.get(api_url(env, "pods/not-ours/logs/")).status_code == 400

    page = client.get(page_url(env)).content.decode()
    assert (
        "https://kibana.example.com/app/discover#/?q=kubernetes.pod.name:__POD__ AND ns:"
        f"{env.namespace}&amp;p=orders" in page
    )


def test_api_read_returns_the_whole_state(client, people, env):
    client.force_login(people.tester)
    body = client.get(api_url(env)).json()
    assert body["namespace"] == env.namespace and len(body["pods"]) == 2
    assert body["hpa"]["max_replicas"] == 5 and body["service"]["type"] == "ClusterIP"
    assert body["config"]["request"]["cpu_request"] == "500m"
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert "/api/projects/{name}/environments/{environment}/config/" in schema.content.decode()
    assert "/api/projects/{name}/environments/{environment}/config/changes/{id}/" in schema.content.decode()


def run_change(change):
    from tests.helpers.environments import run_change as run

    return run(change)
