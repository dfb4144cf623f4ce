"""Config and image released together: a release's Apollo change set against the real Apollo stand-in,
the image against the real pipeline and control plane (the fixtures the other release tests use).

Apollo is read back through its Open API (``apollo_project``), as anyone would."""

import json

import pytest
from django.core.exceptions import ValidationError
from kubernetes import client as k8s

from configs.errors import ConfigError
from configs.services import config_release_restore
from deploys import services
from deploys.choices import DeploymentOutcome, ReleaseStatus
from deploys.models import DeploymentRecord, Release
from deploys.services.release_config import config_apply
from deploys.services.releases import release_rollback_auto
from deploys.tasks import release_build, release_deploy, release_tag, rollback_deploy
from observability.models import AuditEvent
from tests.fixtures.pipeline import run_release_task

SECRET = "s3cret-value-never-shown"


def _run(release: Release, *tasks) -> Release:
    for task in tasks or (release_tag, release_build, release_deploy):
        release = run_release_task(task, release)
    return release


def _image(kube_cluster, onboarded, environment: str) -> str:
    deployment = k8s.AppsV1Api(kube_cluster.api_client).read_namespaced_deployment(
        onboarded.project.name, onboarded.namespace(environment)
    )
    return deployment.spec.template.spec.containers[0].image


def _rollback(people, onboarded, environment: str, release: Release) -> DeploymentRecord:
    target = DeploymentRecord.objects.get(release=release, environment=environment)
    record = services.release_rollback(
        actor=people.developer, project=onboarded.project, environment=environment, record_id=target.pk
    )
    rollback_deploy.apply(kwargs={"record_id": record.pk})
    record.refresh_from_db()
    return record


# --- end to end: test, promotion, rollback ---------------------------------------------------------------


@pytest.mark.kube
@pytest.mark.standins
@pytest.mark.django_db
def test_config_and_image_go_to_test_then_prod_together_and_come_back_together(
    client, people, onboarded, apollo_project, kube_cluster
):
    base = f"/api/projects/{onboarded.project.name}"
    apollo_project.edit_outside("old.flag", "on")
    apollo_project.edit_outside("old.flag", "on", env="PRO")
    client.force_login(people.developer)
    answer = client.post(
        f"{base}/releases/",
        {
            "branch": "main",
            "config_changes": [
                {"key": "greeting", "value": "hello v1", "comment": "first"},
                {"key": "db.password", "value": SECRET},
                {"namespace": "extra", "key": "old.flag", "delete": True},
                {"namespace": "extra", "key": "feature.x", "value": "true"},
            ],
        },
        content_type="application/json",
    )
    assert answer.status_code == 201, answer.content
    shown = {(c["namespace"], c["key"]): c for c in answer.json()["config_changes"]}
    assert shown[("application", "db.password")]["value"] == "••••••"
    assert shown[("extra", "old.flag")]["delete"] is True
    assert SECRET not in answer.content.decode()
    submit = AuditEvent.objects.get(verb="release.submit", project=onboarded.project)
    assert "db.password" in json.dumps(submit.changes) and SECRET not in json.dumps(submit.changes)

    first = _run(Release.objects.get(pk=answer.json()["id"]))
    assert first.status == ReleaseStatus.DEPLOYED, first.error
    # Test's Apollo namespaces hold the items and a release titled with the version, by the releaser.
    assert apollo_project.item("greeting")["value"] == "hello v1"
    assert apollo_project.item("old.flag", namespace="extra") is None
    fat = apollo_project.latest()
    assert fat["name"] == first.version and fat["configurations"]["db.password"] == SECRET
    assert fat["dataChangeCreatedBy"] == people.developer.username
    fat_extra = apollo_project.latest(namespace="extra")
    assert first.config_releases == {"application": fat["id"], "extra": fat_extra["id"]}
    assert first.config_applied["application"] == {"before": None, "after": fat["id"]}
    # Prod's namespace is untouched until the promotion.
    assert apollo_project.item("greeting", env="PRO") is None

    # The page and the API show the change set masked and the Apollo release ids.
    page = client.get(f"/projects/{onboarded.project.name}/releases/{first.pk}/").content.decode()
    assert 'id="release-config-changes"' in page and "hello v1" in page and SECRET not in page
    assert f"#{fat['id']}" in page
    detail = client.get(f"{base}/releases/{first.pk}/").json()
    assert detail["config_releases"] == first.config_releases

    services.release_confirm(actor=people.tester, release_id=first.pk)
    prod = services.release_promote(actor=people.developer, release_id=first.pk)
    assert json.loads(prod.config_changes) == json.loads(first.config_changes)
    prod = _run(prod, release_deploy)
    assert prod.status == ReleaseStatus.DEPLOYED, prod.error
    # The same items in prod's namespace, and the very digest that ran in test.
    assert apollo_project.item("greeting", env="PRO")["value"] == "hello v1"
    assert apollo_project.item("db.password", env="PRO")["value"] == SECRET
    assert apollo_project.item("old.flag", env="PRO", namespace="extra") is None
    assert apollo_project.item("feature.x", env="PRO", namespace="extra")["value"] == "true"
    pro = apollo_project.latest(env="PRO")
    assert pro["name"] == first.version and pro["dataChangeCreatedBy"] == people.developer.username
    assert prod.config_releases["application"] == pro["id"]
    assert prod.image == first.image == _image(kube_cluster, onboarded, "prod")

    # A second test release changes the greeting; rolling test back returns image and configuration.
    second = _run(
        services.release_submit(
            actor=people.developer,
            project=onboarded.project,
            branch="main",
            config_changes=[{"key": "greeting", "value": "hello v2"}],
        )
    )
    assert second.status == ReleaseStatus.DEPLOYED, second.error
    assert apollo_project.item("greeting")["value"] == "hello v2"
    assert apollo_project.latest()["id"] == second.config_releases["application"] > fat["id"]
    # Unchanged namespaces are recorded too: the release ran with them.
    assert second.config_releases["extra"] == fat_extra["id"]

    record = _rollback(people, onboarded, "test", first)
    assert record.outcome == DeploymentOutcome.SUCCEEDED, record.message
    assert _image(kube_cluster, onboarded, "test") == first.image
    assert apollo_project.latest()["id"] == fat["id"]
    assert apollo_project.latest()["configurations"]["greeting"] == "hello v1"
    rolled = AuditEvent.objects.get(
        verb="apollo.rollback", changes__release_id=second.config_releases["application"]
    )
    assert rolled.actor == people.developer and rolled.changes["to_release_id"] == fat["id"]


@pytest.mark.kube
@pytest.mark.standins
@pytest.mark.django_db
def test_apollo_refusing_the_release_fails_it_and_leaves_the_image(
    people, onboarded, apollo_project, apollo_server, kube_cluster
):
    good = _run(services.release_submit(actor=people.developer, project=onboarded.project, branch="main"))
    assert good.status == ReleaseStatus.DEPLOYED, good.error
    # Recorded even without a change set: never released yet.
    assert good.config_releases == {"application": None, "extra": None}
    # A token that may edit test's namespace but not release it.
    apollo_server.add_consumer(apollo_project.token, {apollo_project.app_id: {"FAT": {"*": ["modify"]}}})

    bad = _run(
        services.release_submit(
            actor=people.developer,
            project=onboarded.project,
            branch="main",
            config_changes=[{"key": "greeting", "value": "refused"}],
        )
    )
    assert bad.status == ReleaseStatus.FAILED
    assert "Configuration:" in bad.error and "did not release" in bad.error, bad.error
    assert "403" in bad.error or "denied" in bad.error.lower() or "not granted" in bad.error, bad.error
    assert "The image was not switched." in bad.error
    assert not DeploymentRecord.objects.filter(release=bad).exists()
    assert _image(kube_cluster, onboarded, "test") == good.image
    assert apollo_project.latest() is None


@pytest.mark.kube
@pytest.mark.standins
@pytest.mark.django_db
def test_a_failed_rollout_rolls_its_configuration_back(people, onboarded, apollo_project, kube_cluster):
    good = _run(
        services.release_submit(
            actor=people.developer,
            project=onboarded.project,
            branch="main",
            config_changes=[{"key": "greeting", "value": "good"}],
        )
    )
    assert good.status == ReleaseStatus.DEPLOYED, good.error
    good_id = good.config_releases["application"]
    namespace, name = onboarded.namespace("test"), onboarded.project.name
    api = kube_cluster.api_client
    # No room for one more pod, and a short deadline: the next rollout cannot progress.
    running = len(
        k8s.CoreV1Api(api)
        .list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/name={name}")
        .items
    )
    k8s.CoreV1Api(api).create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "full"}, "spec": {"hard": {"pods": str(running)}}}
    )
    k8s.AppsV1Api(api).patch_namespaced_deployment(name, namespace, {"spec": {"progressDeadlineSeconds": 5}})

    stuck = _run(
        services.release_submit(
            actor=people.developer,
            project=onboarded.project,
            branch="main",
            config_changes=[{"key": "greeting", "value": "stuck"}],
        )
    )
    assert stuck.status == ReleaseStatus.FAILED
    assert "ProgressDeadlineExceeded" in stuck.error
    made = stuck.config_applied["application"]["after"]
    assert made > good_id
    assert f"rolled back to Apollo release #{good_id}" in stuck.error, stuck.error
    assert apollo_project.latest()["id"] == good_id
    assert apollo_project.latest()["configurations"]["greeting"] == "good"
    fail = AuditEvent.objects.get(verb="release.deploy.fail", target_id=str(stuck.pk))
    assert f"#{good_id}" in fail.changes["config"]


@pytest.mark.kube
@pytest.mark.standins
@pytest.mark.django_db
def test_automatic_rollback_restores_the_config_and_a_lost_config_release_stops_a_rollback(
    people, onboarded, apollo_project, kube_cluster
):
    def release(value: str) -> Release:
        done = _run(
            services.release_submit(
                actor=people.developer,
                project=onboarded.project,
                branch="main",
                config_changes=[{"key": "greeting", "value": value}],
            )
        )
        assert done.status == ReleaseStatus.DEPLOYED, done.error
        return done

    good, second = release("good"), release("second")
    good_id, second_id = good.config_releases["application"], second.config_releases["application"]
    # What verification does on a regression: back to the deployment the release replaced.
    auto = release_rollback_auto(second, DeploymentRecord.objects.get(release=second), reason="regressed")
    rollback_deploy.apply(kwargs={"record_id": auto.pk})
    auto.refresh_from_db()
    assert auto.outcome == DeploymentOutcome.SUCCEEDED, auto.message
    assert _image(kube_cluster, onboarded, "test") == good.image
    # What clients read is the release (Apollo's rollback leaves the items being edited as they were).
    assert apollo_project.latest()["id"] == good_id
    assert apollo_project.latest()["configurations"]["greeting"] == "good"

    # Apollo release #second was rolled back: a rollback to ``second`` cannot bring its configuration,
    # so it fails with the cause and leaves the image alone.
    record = _rollback(people, onboarded, "test", second)
    assert record.outcome == DeploymentOutcome.FAILED
    assert f"#{second_id}" in record.message and "was rolled back" in record.message, record.message
    assert "The image was not switched." in record.message
    assert _image(kube_cluster, onboarded, "test") == good.image
    assert apollo_project.latest()["id"] == good_id


# --- the pieces, without a cluster ----------------------------------------------------------------------


@pytest.mark.standins
@pytest.mark.django_db
def test_change_sets_are_validated_at_submit(client, people, apollo_project):
    project = people.project
    cases = [
        ([{"namespace": "nope", "key": "a", "value": "1"}], "do not list the namespace nope"),
        ([{"key": "k" * 129, "value": "1"}], "At most 128"),
        ([{"key": "a", "value": "x" * 20001}], "At most 20000"),
        ([{"key": "a"}], "give a value"),
        ([{"key": "a", "value": "1"}, {"key": "a", "delete": True}], "appears twice"),
    ]
    for changes, message in cases:
        with pytest.raises(ValidationError, match=message):
            services.release_submit(
                actor=people.developer, project=project, branch="main", config_changes=changes
            )
    client.force_login(people.developer)
    answer = client.post(
        f"/api/projects/{project.name}/releases/",
        {"branch": "main", "config_changes": [{"namespace": "nope", "key": "a", "value": "1"}]},
        content_type="application/json",
    )
    assert answer.status_code == 400
    assert "nope" in json.dumps(answer.json()["errors"]["config_changes"])
    # The page: one textarea per namespace; a line that is neither key=value nor !key is a form error.
    page = client.get(f"/projects/{project.name}/releases/").content.decode()
    assert 'data-namespace="application"' in page and 'data-namespace="extra"' in page
    bad = client.post(f"/projects/{project.name}/releases/", {"branch": "main", "config_1": "just words"})
    assert 'data-field="config_1"' in bad.content.decode()
    # Well-formed lines reach the service (which then refuses: this project has no repository).
    good_lines = client.post(
        f"/projects/{project.name}/releases/",
        {"branch": "main", "config_0": "greeting=hi\n# a comment\n!old.key\n", "config_1": "a.b=c=d"},
    )
    assert "no GitLab repository" in good_lines.content.decode()
    assert not Release.objects.exists()

    apollo_project.settings.delete()
    with pytest.raises(ValidationError, match="no Apollo settings"):
        services.release_submit(
            actor=people.developer,
            project=project,
            branch="main",
            config_changes=[{"key": "a", "value": "1"}],
        )


@pytest.mark.standins
@pytest.mark.django_db
def test_a_resumed_deploy_step_does_not_apply_the_change_set_twice(people, apollo_project):
    release = Release.objects.create(
        project=people.project,
        environment="test",
        created_by=people.developer,
        version="20260101-000000-u1",
        config_changes=json.dumps([{"namespace": "application", "key": "a", "value": "1", "comment": ""}]),
    )
    assert config_apply(release) == ""
    made = apollo_project.latest()["id"]
    # The worker died after Apollo released but before "after" was written.
    Release.objects.filter(pk=release.pk).update(config_applied={"application": {"before": None}})
    release.refresh_from_db()
    assert config_apply(release) == ""
    release.refresh_from_db()
    assert apollo_project.latest()["id"] == made
    assert release.config_applied["application"] == {"before": None, "after": made}
    assert AuditEvent.objects.filter(verb="apollo.release", project=people.project).count() == 1


@pytest.mark.standins
@pytest.mark.django_db
def test_restore_walks_back_and_says_when_it_cannot(people, apollo_project):
    ids = [apollo_project.release_outside(f"r{n}") for n in range(3)]
    undone = config_release_restore(
        project=people.project,
        env="test",
        namespace="application",
        to_release_id=ids[0],
        operator=people.ops,
        reason="test",
    )
    assert undone == [ids[2], ids[1]]
    assert apollo_project.latest()["id"] == ids[0]
    assert (
        config_release_restore(
            project=people.project,
            env="test",
            namespace="application",
            to_release_id=ids[0],
            operator=people.ops,
            reason="test",
        )
        == []
    )
    # Rolled back (by the portal, above): it cannot come back, and nothing is done.
    with pytest.raises(ConfigError, match="was rolled back"):
        config_release_restore(
            project=people.project,
            env="test",
            namespace="application",
            to_release_id=ids[2],
            operator=people.ops,
            reason="test",
        )
    assert apollo_project.latest()["id"] == ids[0]
