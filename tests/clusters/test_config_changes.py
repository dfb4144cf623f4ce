"""Configuration changes: checked in the request, recorded, applied by the task with a live log, against
the real control plane."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from kubernetes import client as k8s

from clusters.choices import ConfigChangeStatus
from clusters.models import ConfigChange, ProjectEnvironment
from clusters.selectors.environments import EnvironmentRef
from clusters.services import config_changes
from clusters.tasks import apply_config_change
from observability.models import AuditEvent, LiveEvent
from opsportal.errors import StateConflict
from projects.choices import OPS_GROUP
from tests.fixtures.people import make_user
from tests.helpers.environments import config_post, provision, run_change

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture
def env(people, local_clusters):
    return provision(people, local_clusters["test"])


def _api(env, suffix: str = "config/") -> str:
    return f"/api/projects/{env.project.name}/environments/{env.environment}/{suffix}"


def _live(kube_cluster, namespace):
    api = kube_cluster.api_client
    return (
        k8s.AppsV1Api(api).read_namespaced_deployment("orders", namespace),
        k8s.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("orders", namespace),
    )


def _messages(change) -> list[str]:
    return [p["message"] for p in change.progress]


def test_page_edit_queues_a_change_that_the_task_applies_with_a_log(
    client, people, env, kube_cluster, django_capture_on_commit_callbacks
):
    client.force_login(people.ops)
    url = reverse("environment-config", args=["orders", "test"])
    deployment, hpa = _live(kube_cluster, env.namespace)
    generation = deployment.metadata.generation
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = client.post(
            url, {**config_post(env, hpa_max="7", memory_request="640Mi"), "step": "apply"}
        )
    change = ConfigChange.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("environment-config-change", args=["orders", "test", change.pk])
    assert len(queued) == 2  # the live event and the task, both on commit, not before
    # Nothing touched the cluster in the request; the change waits for the worker.
    assert change.status == ConfigChangeStatus.QUEUED and change.actor == people.ops
    assert _live(kube_cluster, env.namespace)[1].spec.max_replicas == 5
    assert "+  maxReplicas: 7" in change.diff and change.changes["hpa_max"] == [5, 7]
    event = AuditEvent.objects.get(verb="environment.config.update")
    assert event.changes["config_change"] == change.pk and "maxReplicas" in event.changes["diff"]
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-status="queued"' in html and "maxReplicas" in html and "data-live-stream" in html

    change = run_change(change)
    assert change.status == ConfigChangeStatus.APPLIED, change.error
    assert change.started_at and change.finished_at and change.attempts == 1
    deployment, hpa = _live(kube_cluster, env.namespace)
    assert hpa.spec.max_replicas == 7
    assert deployment.spec.template.spec.containers[0].resources.requests["memory"] == "640Mi"
    assert deployment.metadata.generation > generation
    assert deployment.spec.replicas == 2  # the live scale is kept
    log = _messages(change)
    assert "Applying Deployment orders" in log and "Applying HorizontalPodAutoscaler orders" in log
    assert "Waiting for the Deployment rollout" in log
    assert any(m.startswith("Rollout:") for m in log) and log[-1] == "The Deployment rolled out"
    saved = ProjectEnvironment.objects.get(pk=env.pk)
    assert saved.spec["request"]["hpa_max"] == 7
    verbs = list(
        AuditEvent.objects.filter(target_type="clusters.configchange", target_id=str(change.pk))
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs == ["environment.config.apply.start", "environment.config.apply.succeed"]
    # Every step went out on the project's live stream, which the change page subscribes to.
    live = LiveEvent.objects.filter(stream=f"project.{people.project.pk}", payload__change=change.pk)
    assert {e.type for e in live} == {"config-change-changed", "config-change-progress"}
    assert live.filter(type="config-change-progress").count() == len(log)
    panel = client.get(response["Location"], HTTP_HX_REQUEST="true")
    assert 'id="change-progress"' in panel.content.decode() and "rolled out" in panel.content.decode()
    assert 'data-status="applied"' in panel.content.decode()


def test_api_edit_returns_202_and_the_change_can_be_followed(
    client, people, env, kube_cluster, django_capture_on_commit_callbacks
):
    client.force_login(people.ops)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.put(
            _api(env), {"request": {"hpa_min": 3, "replicas": 3}}, content_type="application/json"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    change = ConfigChange.objects.get(pk=body["id"])
    assert body["status"] == "queued" and body["changes"] == {"hpa_min": [2, 3], "replicas": [2, 3]}
    assert body["url"].endswith(_api(env, f"config/changes/{change.pk}/"))
    assert client.get(body["url"]).json()["status"] == "queued"

    run_change(change)
    detail = client.get(_api(env, f"config/changes/{change.pk}/"))
    assert detail.status_code == 200
    data = detail.json()
    assert data["status"] == "applied" and data["error"] == "" and "+  minReplicas: 3" in data["diff"]
    assert any(p["message"] == "Applying HorizontalPodAutoscaler orders" for p in data["progress"])
    assert _live(kube_cluster, env.namespace)[1].spec.min_replicas == 3
    listed = client.get(_api(env, "config/changes/")).json()
    assert [(c["id"], c["status"], c["actor"]) for c in listed] == [
        (change.pk, "applied", people.ops.username)
    ]
    # An edit that changes nothing records nothing.
    same = client.put(_api(env), {"request": {"hpa_min": 3}}, content_type="application/json")
    assert same.status_code == 200 and same.json()["applied"] is False
    assert ConfigChange.objects.count() == 1


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"hpa_min": "6", "hpa_max": "3"}, "autoscaling"), ({"memory_limit": "256Mi"}, "limit")],
)
def test_invalid_edits_are_refused_at_once_and_record_nothing(client, people, env, changes, message):
    client.force_login(people.ops)
    response = client.post(
        reverse("environment-config", args=["orders", "test"]),
        {**config_post(env, **changes), "step": "apply"},
    )
    assert response.status_code == 400
    assert message in response.content.decode().lower()
    api = client.put(_api(env), {"request": changes}, content_type="application/json")
    assert api.status_code == 400
    assert not ConfigChange.objects.exists()
    assert not AuditEvent.objects.filter(verb="environment.config.update").exists()


def test_a_second_edit_while_one_is_in_progress_is_a_conflict(
    client, people, env, django_capture_on_commit_callbacks
):
    client.force_login(people.ops)
    url = reverse("environment-config", args=["orders", "test"])
    with django_capture_on_commit_callbacks(execute=False):
        assert client.post(url, {**config_post(env, hpa_max="6"), "step": "apply"}).status_code == 302
    first = ConfigChange.objects.get()
    expected = f"Configuration change #{first.pk} is in progress"
    second = client.post(url, {**config_post(env, hpa_max="9"), "step": "apply"})
    assert second.status_code == 409 and expected in second.content.decode()
    ConfigChange.objects.filter(pk=first.pk).update(status=ConfigChangeStatus.APPLYING)
    api = client.put(_api(env), {"request": {"hpa_max": 9}}, content_type="application/json")
    assert api.status_code == 409 and expected in api.json()["detail"]
    assert ConfigChange.objects.count() == 1
    assert AuditEvent.objects.filter(verb="environment.config.update").count() == 1
    assert 'id="config-active-change"' in client.get(url).content.decode()


def test_running_the_task_twice_applies_once(
    client, people, env, kube_cluster, django_capture_on_commit_callbacks
):
    client.force_login(people.ops)
    with django_capture_on_commit_callbacks(execute=False):
        client.put(_api(env), {"request": {"hpa_max": 6}}, content_type="application/json")
    change = run_change(ConfigChange.objects.get())
    assert change.status == ConfigChangeStatus.APPLIED, change.error
    deployment, hpa = _live(kube_cluster, env.namespace)
    audits = AuditEvent.objects.count()
    log = list(change.progress)

    # A duplicate delivery of the same message, and a message of another run, find nothing to do.
    again = run_change(change)
    apply_config_change.apply(
        kwargs={"change_id": change.pk, "run_token": "00000000-0000-0000-0000-000000000000"}
    )
    after_deployment, after_hpa = _live(kube_cluster, env.namespace)
    assert after_deployment.metadata.generation == deployment.metadata.generation
    assert after_hpa.metadata.resource_version == hpa.metadata.resource_version
    assert again.status == ConfigChangeStatus.APPLIED and again.progress == log and again.attempts == 1
    assert AuditEvent.objects.count() == audits
    # A late failure report never flips a finished change.
    config_changes.config_change_fail(change_id=change.pk, run_token=str(change.run_token), error="late")
    change.refresh_from_db()
    assert change.status == ConfigChangeStatus.APPLIED and change.error == ""


def test_unreachable_cluster_fails_the_change_with_the_cause_after_the_retries(
    client, people, env, local_clusters, settings, django_capture_on_commit_callbacks
):
    settings.INTEGRATION_MAX_RETRIES = 1
    settings.INTEGRATION_RETRY_BACKOFF_SECONDS = 0
    client.force_login(people.ops)
    with django_capture_on_commit_callbacks(execute=False):
        assert (
            client.put(_api(env), {"request": {"hpa_max": 6}}, content_type="application/json").status_code
            == 202
        )
    cluster = local_clusters["test"]
    cluster.api_url = "https://127.0.0.1:1"  # a closed port
    cluster.save()
    change = run_change(ConfigChange.objects.get())
    assert change.status == ConfigChangeStatus.FAILED
    assert "gave up after 1 retries" in change.error and "Clusters page" in change.error
    assert (
        "127.0.0.1:1" in change.error
        or "refused" in change.error.lower()
        or "unreach" in change.error.lower()
    )
    assert change.attempts == 2  # the first run and one retry
    assert sum("Temporary failure, will retry" in m for m in _messages(change)) == 2
    assert change.secret_env == ""
    assert AuditEvent.objects.filter(verb="environment.config.apply.fail", target_id=str(change.pk)).exists()
    assert ProjectEnvironment.objects.get(pk=env.pk).spec == env.spec
    # The environment is free for the next edit.
    assert not config_changes.ConfigChange.objects.filter(status__in=["queued", "applying"]).exists()


def test_who_may_see_and_apply(client, people, env, django_capture_on_commit_callbacks):
    client.force_login(people.ops)
    with django_capture_on_commit_callbacks(execute=False):
        client.put(_api(env), {"request": {"hpa_max": 6}}, content_type="application/json")
    change = ConfigChange.objects.get()
    pages = [
        reverse("environment-config-changes", args=["orders", "test"]),
        reverse("environment-config-change", args=["orders", "test", change.pk]),
        _api(env, "config/changes/"),
        _api(env, f"config/changes/{change.pk}/"),
    ]
    client.force_login(people.developer)
    for url in pages:
        assert client.get(url).status_code == 200, url
    assert "olivia-ops" in client.get(pages[0]).content.decode()
    assert (
        client.put(_api(env), {"request": {"hpa_max": 7}}, content_type="application/json").status_code == 403
    )
    assert (
        client.post(
            reverse("environment-config", args=["orders", "test"]), {**config_post(env), "step": "apply"}
        ).status_code
        == 403
    )
    client.force_login(people.outsider)
    for url in pages:
        assert client.get(url).status_code == 404, url
    client.force_login(people.ops)
    assert (
        client.get(reverse("environment-config-change", args=["orders", "test", change.pk + 999])).status_code
        == 404
    )
    assert ConfigChange.objects.count() == 1


def test_stuck_changes_are_failed_by_the_sweeper(client, people, env, django_capture_on_commit_callbacks):
    client.force_login(people.ops)
    with django_capture_on_commit_callbacks(execute=False):
        client.put(_api(env), {"request": {"hpa_max": 6}}, content_type="application/json")
    change = ConfigChange.objects.get()
    assert config_changes.config_changes_fail_stuck(older_than_seconds=600) == 0
    ConfigChange.objects.filter(pk=change.pk).update(
        status=ConfigChangeStatus.APPLYING, updated_at=timezone.now() - timedelta(hours=1)
    )
    assert config_changes.config_changes_fail_stuck(older_than_seconds=600) == 1
    change.refresh_from_db()
    assert change.status == ConfigChangeStatus.FAILED and "stopped responding" in change.error
    assert change.secret_env == ""
    # Its message, arriving late, finds the change ended.
    assert run_change(change).status == ConfigChangeStatus.FAILED


# --- optimistic concurrency: a form or client that loaded an older configuration --------------------------


@pytest.fixture
def second_ops(db):
    return make_user("oscar-ops", OPS_GROUP)


def _loaded_form(client, env, **changes) -> dict:
    """What an editor's browser posts: the version hidden in the page they loaded, and their edits."""
    page = client.get(reverse("environment-config", args=["orders", "test"]))
    assert page.status_code == 200
    version = re.search(r'name="version" value="([0-9a-f]+)"', page.content.decode()).group(1)
    shown = ProjectEnvironment.objects.get(pk=env.pk)  # the values the page showed
    return {**config_post(shown, **changes), "version": version}


def _written(env):
    saved = ProjectEnvironment.objects.get(pk=env.pk)
    return saved.spec, ConfigChange.objects.count(), AuditEvent.objects.count()


def test_page_stale_form_is_refused_naming_the_change_and_a_fresh_one_applies(
    client, people, env, second_ops, django_capture_on_commit_callbacks
):
    url = reverse("environment-config", args=["orders", "test"])
    other = Client()
    other.force_login(second_ops)
    client.force_login(people.ops)
    mine = _loaded_form(client, env, memory_request="640Mi")
    theirs = _loaded_form(other, env, hpa_max="7")
    with django_capture_on_commit_callbacks(execute=False):
        assert other.post(url, {**theirs, "step": "apply"}).status_code == 302
    applied = run_change(ConfigChange.objects.get())
    assert applied.status == ConfigChangeStatus.APPLIED, applied.error

    before = _written(env)
    for step in ("preview", "apply"):
        stale = client.post(url, {**mine, "step": step})
        assert stale.status_code == 409, step
        errors = " ".join(stale.context["form"].non_field_errors())
        assert "was changed since you loaded it" in errors and "hpa_max: 5 → 7" in errors, errors
        assert f"{second_ops.username} (#{applied.pk})" in errors
        assert "hpa_max: 5 → 7" in stale.content.decode()
        assert stale.context["plan"] is None
    assert _written(env) == before  # no change recorded, nothing audited, the spec as it was

    # Reloaded, the same edit is made on the current configuration and keeps the other editor's change.
    with django_capture_on_commit_callbacks(execute=False):
        fresh = client.post(url, {**_loaded_form(client, env, memory_request="640Mi"), "step": "apply"})
    assert fresh.status_code == 302
    change = ConfigChange.objects.order_by("-pk").first()
    assert change.changes == {"memory_request": ["512Mi", "640Mi"]}
    assert change.request["hpa_max"] == 7


def test_page_form_without_a_version_is_refused(client, people, env):
    client.force_login(people.ops)
    form = _loaded_form(client, env, hpa_max="7")
    del form["version"]
    before = _written(env)
    response = client.post(reverse("environment-config", args=["orders", "test"]), {**form, "step": "apply"})
    assert response.status_code == 400
    assert "reload the page" in " ".join(response.context["form"].non_field_errors())
    assert _written(env) == before


def test_api_stale_version_is_409_naming_the_change_and_a_fresh_one_is_accepted(
    client, people, env, second_ops, django_capture_on_commit_callbacks
):
    client.force_login(people.ops)
    got = client.get(_api(env))
    loaded = got.json()["version"]
    assert got["ETag"] == f'"{loaded}"'
    assert client.get(_api(env, "")).json()["config"]["version"] == loaded
    other = Client()
    other.force_login(second_ops)
    with django_capture_on_commit_callbacks(execute=False):
        first = other.put(
            _api(env), {"request": {"hpa_max": 7}, "version": loaded}, content_type="application/json"
        )
    assert first.status_code == 202, first.content
    applied = run_change(ConfigChange.objects.get(pk=first.json()["id"]))
    assert applied.status == ConfigChangeStatus.APPLIED, applied.error

    before = _written(env)
    edit = {"request": {"memory_request": "640Mi"}}
    for stale in (
        client.put(_api(env), {**edit, "version": loaded}, content_type="application/json"),
        client.put(_api(env), {**edit, "dry_run": True, "version": loaded}, content_type="application/json"),
        client.put(_api(env), edit, content_type="application/json", HTTP_IF_MATCH=f'"{loaded}"'),
    ):
        assert stale.status_code == 409, stale.content
        body = stale.json()
        assert set(body) == {"detail", "errors"} and body["errors"] == {}
        assert "hpa_max: 5 → 7" in body["detail"] and second_ops.username in body["detail"]
    assert _written(env) == before

    current = client.get(_api(env))["ETag"]
    with django_capture_on_commit_callbacks(execute=False):
        fresh = client.put(_api(env), edit, content_type="application/json", HTTP_IF_MATCH=current)
    assert fresh.status_code == 202, fresh.content
    assert fresh.json()["changes"] == {"memory_request": ["512Mi", "640Mi"]}


def test_the_plan_is_checked_again_under_the_lock(
    people, env, second_ops, django_capture_on_commit_callbacks
):
    """Two editors racing past the dry run: the configuration the plan was made on must still be current
    when the row is locked, even for an API edit without a version."""
    ref = EnvironmentRef(project=people.project, environment=ProjectEnvironment.objects.get(pk=env.pk))
    plan_base = ref.environment.spec
    # Someone else's change lands between this editor's read and its lock.
    ProjectEnvironment.objects.filter(pk=env.pk).update(
        spec={**plan_base, "request": {**plan_base["request"], "hpa_max": 7}}
    )
    before = _written(env)
    with pytest.raises(StateConflict, match="was changed since you loaded it"):
        config_changes.config_change_create(actor=people.ops, ref=ref, request={"memory_request": "640Mi"})
    assert _written(env) == before
