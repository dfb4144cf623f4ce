"""The environment page's Eureka section and its API, against the real Eureka server: the instances of the
service with their pod, ops taking one out of service and back (audited), members reading, outsiders not
seeing, and a Eureka that is not configured or not reachable said so, never a 500."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from clusters.models import Cluster, ProjectEnvironment
from clusters.selectors.eureka import eureka_app_name
from integrations.kubernetes.client import KubeClient
from observability.models import AuditEvent
from sandbox.procs import free_port
from tests.helpers.environments import provision
from tests.helpers.eureka import instance, register

pytestmark = pytest.mark.django_db(transaction=True)
HTMX = {"HTTP_HX_REQUEST": "true"}


def api(env: ProjectEnvironment, rest: str = "") -> str:
    return f"/api/projects/{env.project.name}/environments/{env.environment}/eureka/{rest}"


def page(env: ProjectEnvironment, rest: str = "") -> str:
    return f"/projects/{env.project.name}/env/{env.environment}/eureka/{rest}"


def _use_eureka(env: ProjectEnvironment, url: str, app: str | None = None) -> None:
    Cluster.objects.filter(pk=env.cluster_id).update(eureka_url=url)
    if app:
        env.spec = {
            "request": {"env_vars": [["LOG_LEVEL", "info"], ["SPRING_APPLICATION_NAME", app.lower()]]}
        }
        env.save(update_fields=["spec"])


def test_the_app_name_is_the_project_upper_cased_unless_the_environment_names_it(people) -> None:
    env = ProjectEnvironment(project=people.project, environment="test", spec={})
    assert eureka_app_name(env) == "ORDERS"
    env.spec = {"request": {"env_vars": [["SPRING_APPLICATION_NAME", "order-service"]]}}
    assert eureka_app_name(env) == "ORDER-SERVICE"
    env.spec["request"]["env_vars"].append(["EUREKA_INSTANCE_APPNAME", "orders-v2"])
    assert eureka_app_name(env) == "ORDERS-V2"  # Spring Cloud's eureka.instance.appname wins
    env.spec = {"request": {"env_vars": [["EUREKA_APP", "  "]]}}
    assert eureka_app_name(env) == "ORDERS"


def test_without_a_eureka_url_the_page_and_api_say_so(client, people, recorded_environment) -> None:
    env = recorded_environment
    client.force_login(people.viewer)
    section = client.get(page(env), **HTMX)
    assert section.status_code == 200
    assert 'id="eureka-error"' in section.content.decode()
    assert f"Eureka is not configured for the cluster {env.cluster.name}" in section.content.decode()
    listed = client.get(api(env))
    assert listed.status_code == 200
    assert listed.json()["enabled"] is False and "not configured" in listed.json()["error"]
    client.post(reverse("set-language"), {"language": "zh-hans", "next": "/"})
    assert f"集群 {env.cluster.name} 未配置 Eureka" in client.get(page(env), **HTMX).content.decode()
    client.post(reverse("set-language"), {"language": "en", "next": "/"})

    client.force_login(people.ops)
    refused = client.post(
        api(env, "instances/10.0.1.7:orders:8080/status/"),
        {"status": "OUT_OF_SERVICE"},
        content_type="application/json",
    )
    assert refused.status_code == 409 and "not configured" in refused.json()["detail"]
    on_page = client.post(page(env, "10.0.1.7:orders:8080/status/"), {"status": "OUT_OF_SERVICE"}, **HTMX)
    assert on_page.status_code == 200 and 'data-ok="false"' in on_page.content.decode()
    assert not AuditEvent.objects.filter(verb__startswith="environment.eureka").exists()


def test_ops_take_an_instance_out_of_service_and_back_members_only_read(
    client, people, recorded_environment, eureka_server, unique_app
) -> None:
    env = recorded_environment
    url = eureka_server.eureka_url
    _use_eureka(env, url, unique_app)
    taken = register(url, unique_app, "10.0.1.7")
    kept = register(url, unique_app, "10.0.1.8")
    status_url = api(env, f"instances/{taken}/status/")

    client.force_login(people.viewer)
    listed = client.get(api(env))
    assert listed.status_code == 200, listed.content
    body = listed.json()
    assert body["enabled"] is True and body["app"] == unique_app and body["error"] == ""
    assert {i["instance_id"]: i["status"] for i in body["instances"]} == {taken: "UP", kept: "UP"}
    # This environment's cluster answers nothing: the instances are listed, their pods unknown.
    assert all(i["pod"] is None for i in body["instances"]) and body["pods_error"]
    for member in (people.viewer, people.developer, people.owner):
        client.force_login(member)
        refused = client.post(status_url, {"status": "OUT_OF_SERVICE"}, content_type="application/json")
        assert refused.status_code == 403, member
    client.force_login(people.outsider)
    assert client.get(api(env)).status_code == 404
    assert (
        client.post(status_url, {"status": "OUT_OF_SERVICE"}, content_type="application/json").status_code
        == 404
    )
    assert instance(url, unique_app, taken)["status"] == "UP"

    client.force_login(people.ops)
    out = client.post(status_url, {"status": "OUT_OF_SERVICE"}, content_type="application/json")
    assert out.status_code == 200, out.content
    assert out.json()["status"] == "OUT_OF_SERVICE" and out.json()["out_of_service"] is True
    assert instance(url, unique_app, taken)["overriddenStatus"] == "OUT_OF_SERVICE"  # the server's word
    assert instance(url, unique_app, kept)["status"] == "UP"
    event = AuditEvent.objects.get(verb="environment.eureka.out_of_service")
    assert event.actor == people.ops and event.project == people.project
    assert event.changes["instance"] == taken and event.changes["status"] == ["UP", "OUT_OF_SERVICE"]
    # Asking again changes nothing and records nothing.
    client.post(status_url, {"status": "OUT_OF_SERVICE"}, content_type="application/json")
    assert AuditEvent.objects.filter(verb="environment.eureka.out_of_service").count() == 1

    back = client.post(status_url, {"status": "UP"}, content_type="application/json")
    assert (
        back.status_code == 200 and back.json()["status"] == "UP" and back.json()["out_of_service"] is False
    )
    assert instance(url, unique_app, taken)["overriddenStatus"] == "UNKNOWN"
    assert AuditEvent.objects.get(verb="environment.eureka.in_service").changes["overridden_status"] == [
        "OUT_OF_SERVICE",
        "UNKNOWN",
    ]

    bad = client.post(status_url, {"status": "DOWN"}, content_type="application/json")
    assert bad.status_code == 400 and "status" in bad.json()["errors"]
    unknown = client.post(
        api(env, "instances/10.0.1.99:gone:8080/status/"), {"status": "UP"}, content_type="application/json"
    )
    assert unknown.status_code == 400 and "instance" in unknown.json()["errors"]


def test_an_unreachable_eureka_is_a_502_and_a_message_on_the_page(
    client, people, recorded_environment
) -> None:
    env = recorded_environment
    _use_eureka(env, f"http://127.0.0.1:{free_port()}/eureka/")
    client.force_login(people.ops)
    listed = client.get(api(env))
    assert listed.status_code == 502 and "Eureka" in listed.json()["detail"]
    section = client.get(page(env), **HTMX)
    assert section.status_code == 200 and "Eureka could not be read" in section.content.decode()
    changed = client.post(
        api(env, "instances/10.0.1.7:orders:8080/status/"), {"status": "UP"}, content_type="application/json"
    )
    assert changed.status_code == 502 and changed.json()["errors"] == {}
    assert not AuditEvent.objects.filter(verb__startswith="environment.eureka").exists()


def test_the_cluster_form_and_api_keep_the_eureka_url(client, people, recorded_environment) -> None:
    cluster = recorded_environment.cluster
    client.force_login(people.ops)
    saved = client.patch(
        f"/api/clusters/{cluster.pk}/",
        {"eureka_url": "http://eureka:8761/eureka"},
        content_type="application/json",
    )
    assert saved.status_code == 200, saved.content
    assert saved.json()["eureka_url"] == "http://eureka:8761/eureka/"
    event = AuditEvent.objects.filter(verb="cluster.update").latest("pk")
    assert event.changes["eureka_url"] == ["", "http://eureka:8761/eureka/"]
    refused = client.patch(
        f"/api/clusters/{cluster.pk}/",
        {"eureka_url": "http://user:secret@eureka:8761/eureka/"},
        content_type="application/json",
    )
    assert refused.status_code == 400 and "eureka_url" in refused.json()["errors"]
    assert "secret" not in str(
        AuditEvent.objects.filter(verb="cluster.update").values_list("changes", flat=True)
    )
    form = client.get(f"/clusters/{cluster.pk}/")
    assert (
        'name="eureka_url"' in form.content.decode() and "http://eureka:8761/eureka/" in form.content.decode()
    )


def _pods_with_ips(cluster: Cluster, namespace: str, count: int) -> dict[str, str]:
    deadline = time.monotonic() + 90
    while True:
        with KubeClient.from_cluster(cluster) as kube:
            pods = kube.list_objects("Pod", namespace).get("items") or []
        found = {
            p["status"]["podIP"]: p["metadata"]["name"]
            for p in pods
            if (p.get("status") or {}).get("podIP") and not p["metadata"].get("deletionTimestamp")
        }
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"pods never got IPs: {pods}"
        time.sleep(0.5)


def test_the_page_lists_the_instances_with_their_pods(
    client, people, local_clusters, eureka_server, unique_app
) -> None:
    cluster = local_clusters["test"]
    env = provision(people, cluster, wait=False, env_vars=[["EUREKA_APP", unique_app]])
    Cluster.objects.filter(pk=cluster.pk).update(eureka_url=eureka_server.eureka_url)
    pods = _pods_with_ips(cluster, env.namespace, 2)
    url = eureka_server.eureka_url
    by_pod = {name: register(url, unique_app, ip) for ip, name in pods.items()}
    elsewhere = register(url, unique_app, "192.0.2.10")  # a VM still serving the same app

    client.force_login(people.viewer)
    overview = client.get(f"/projects/{people.project.name}/env/test/")
    assert overview.status_code == 200
    assert f'hx-get="{page(env)}"' in overview.content.decode()  # loaded by the page, not rendered with it
    listed = client.get(api(env)).json()
    assert {i["instance_id"]: i["pod"] for i in listed["instances"]} == {
        **{instance_id: name for name, instance_id in by_pod.items()},
        elsewhere: None,
    }
    assert [i["pod"] for i in listed["instances"]][-1] is None  # the environment's pods first
    section = client.get(page(env), **HTMX).content.decode()
    assert all(name in section for name in by_pod) and "not a pod here" in section
    assert "Out of service" not in section  # a viewer has no buttons

    client.force_login(people.ops)
    pod, instance_id = sorted(by_pod.items())[0]
    section = client.get(page(env), **HTMX).content.decode()
    assert f'hx-post="{page(env, instance_id + "/status/")}"' in section
    answered = client.post(page(env, f"{instance_id}/status/"), {"status": "OUT_OF_SERVICE"}, **HTMX)
    html = answered.content.decode()
    assert answered.status_code == 200 and 'data-ok="true"' in html
    assert f'data-instance="{instance_id}" data-status="OUT_OF_SERVICE"' in html
    assert "Back in service" in html
    assert instance(url, unique_app, instance_id)["status"] == "OUT_OF_SERVICE"
    assert AuditEvent.objects.get(verb="environment.eureka.out_of_service").changes["instance"] == instance_id
