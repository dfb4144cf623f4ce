"""The release REST API and pages: same rules as the services, clear errors, no 500s."""

import pytest

from deploys.choices import ReleaseStatus
from deploys.models import Release
from deploys.tasks import release_build, release_deploy, release_tag
from observability.models import AuditEvent
from tests.fixtures.pipeline import run_release_task

pytestmark = [pytest.mark.django_db, pytest.mark.kube, pytest.mark.standins]


def _run_all(release: Release) -> Release:
    for task in (release_tag, release_build, release_deploy):
        release = run_release_task(task, release)
    return release


def test_release_api_flow_and_permissions(client, people, onboarded):
    base = f"/api/projects/{onboarded.project.name}"
    client.force_login(people.viewer)
    assert (
        client.post(f"{base}/releases/", {"branch": "main"}, content_type="application/json").status_code
        == 403
    )
    client.force_login(people.outsider)
    assert client.get(f"{base}/releases/").status_code == 404

    client.force_login(people.developer)
    bad = client.post(f"{base}/releases/", {"branch": "main;touch /tmp/x"}, content_type="application/json")
    assert bad.status_code == 400
    assert "branch" in bad.json()["errors"]
    created = client.post(
        f"{base}/releases/", {"branch": "main", "description": "via API"}, content_type="application/json"
    )
    assert created.status_code == 201, created.content
    busy = client.post(f"{base}/releases/", {"branch": "main"}, content_type="application/json")
    assert busy.status_code == 409
    assert "in progress" in busy.json()["detail"]

    release = _run_all(Release.objects.get(pk=created.json()["id"]))
    assert release.status == ReleaseStatus.DEPLOYED, release.error
    detail = client.get(f"{base}/releases/{release.pk}/").json()
    assert detail["image"] == release.image
    assert "==> Checking out" in client.get(f"{base}/releases/{release.pk}/console/").json()["console"]

    # Promotion before confirmation: 409 with the reason, and the refusal is audited.
    refused = client.post(f"{base}/releases/{release.pk}/promote/")
    assert refused.status_code == 409
    assert "confirmed" in refused.json()["detail"]
    assert client.post(f"{base}/releases/{release.pk}/confirm/").status_code == 409  # own release
    client.force_login(people.viewer)
    assert client.post(f"{base}/releases/{release.pk}/confirm/").status_code == 403
    # The same answer whatever the language of the message.
    assert (
        client.post(f"{base}/releases/{release.pk}/confirm/", HTTP_ACCEPT_LANGUAGE="zh-CN").status_code == 403
    )
    client.force_login(people.tester)
    assert client.post(f"{base}/releases/{release.pk}/confirm/").status_code == 200
    client.force_login(people.developer)
    promoted = client.post(f"{base}/releases/{release.pk}/promote/")
    assert promoted.status_code == 201
    assert promoted.json()["image"] == release.image
    assert promoted.json()["environment"] == "prod"
    assert AuditEvent.objects.filter(verb="release.promote.refused").exists()

    history = client.get(f"{base}/deployments/?environment=test").json()
    assert [h["outcome"] for h in history] == ["succeeded"]
    bad_rollback = client.post(
        f"{base}/rollback/", {"environment": "test", "record": 999999}, content_type="application/json"
    )
    assert bad_rollback.status_code == 400
    assert client.get("/api/releases/?status=deployed").json()["count"] >= 1


def test_release_pages_render_and_show_the_actions(client, people, onboarded):
    project = onboarded.project.name
    client.force_login(people.developer)
    page = client.get(f"/projects/{project}/releases/")
    assert page.status_code == 200
    assert 'id="release-form"' in page.content.decode()
    response = client.post(f"/projects/{project}/releases/", {"branch": "bad branch"})
    assert 'data-field="branch"' in response.content.decode()
    response = client.post(f"/projects/{project}/releases/", {"branch": "main", "description": "page"})
    assert response.status_code == 302
    release = _run_all(Release.objects.get())
    detail = client.get(response["Location"]).content.decode()
    assert 'data-status="deployed"' in detail
    assert "confirm-release" not in detail  # the developer released it
    assert 'id="promotion-blocked"' in detail
    client.force_login(people.tester)
    assert "confirm-release" in client.get(response["Location"]).content.decode()
    client.post(f"/projects/{project}/releases/{release.pk}/confirm/")
    client.force_login(people.developer)
    assert "promote-release" in client.get(response["Location"]).content.decode()
    assert client.get("/releases/").status_code == 200


def test_recipes_are_ops_only_and_keep_history(client, people):
    client.force_login(people.developer)
    assert client.get("/recipes/").status_code == 404
    assert client.get("/api/recipes/go/").status_code == 404
    client.force_login(people.ops)
    assert client.get("/recipes/go/").status_code == 200
    current = client.get("/api/recipes/go/").json()[0]
    bad = client.post("/recipes/go/", {"dockerfile": "COPY . /", "build_shell": "echo hi", "comment": "x"})
    assert 'data-field="dockerfile"' in bad.content.decode()
    assert 'data-field="build_shell"' in bad.content.decode()
    saved = client.post(
        "/api/recipes/go/",
        {
            "dockerfile": current["dockerfile"] + "LABEL team=ops\n",
            "build_shell": current["build_shell"],
            "comment": "label",
        },
        content_type="application/json",
    )
    assert saved.status_code == 201
    assert saved.json()["version"] == current["version"] + 1
    assert len(client.get("/api/recipes/go/").json()) == 2
    assert AuditEvent.objects.filter(verb="recipe.update", actor=people.ops).exists()


def test_cancel_before_the_rollout_frees_the_environment(client, people, onboarded):
    base = f"/api/projects/{onboarded.project.name}"
    client.force_login(people.developer)
    first = client.post(f"{base}/releases/", {"branch": "main"}, content_type="application/json").json()
    cancelled = client.post(f"{base}/releases/{first['id']}/cancel/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert client.post(f"{base}/releases/{first['id']}/cancel/").json()["status"] == "cancelled"  # no-op
    # A queued step of the cancelled run does nothing.
    release = Release.objects.get(pk=first["id"])
    release_tag.apply(kwargs={"release_id": release.pk, "run_token": str(release.run_token)})
    release.refresh_from_db()
    assert release.status == ReleaseStatus.CANCELLED and not release.commit_sha
    assert (
        client.post(f"{base}/releases/", {"branch": "main"}, content_type="application/json").status_code
        == 201
    )
    assert AuditEvent.objects.filter(verb="release.cancel", actor=people.developer).exists()
