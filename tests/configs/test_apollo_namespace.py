"""A project's Apollo namespace through the portal, against the Apollo stand-in through the real client:
edits, releases and rollbacks are visible through Apollo's Open API with the portal user as operator,
stale edits are refused, secret-looking values never come back, and Apollo's refusals are sentences."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.utils import translation

from configs.masking import MASK
from configs.models import ConfigRelease
from configs.services import ConfigChange, config_changes_apply, config_release_current
from observability.models import AuditEvent
from tests.fixtures.configs import OUTSIDE_USER
from tests.helpers.api import api_as

pytestmark = pytest.mark.django_db

PAGE = "/projects/orders/apollo/test/application/"
API = "/api/projects/orders/apollo/test/application/"
SECRET = "planted-apollo-secret-value-8c1d"


@pytest.fixture(autouse=True)
def _in_english():
    with translation.override("en"):
        yield


def _version(html: str, key: str) -> str:
    found = re.search(rf'data-key="{re.escape(key)}" data-version="([^"]+)"', html)
    assert found, f"no item {key} on the page"
    return found.group(1)


def _audits(verb: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(verb=verb).order_by("id"))


def test_a_developer_edits_releases_and_deletes_through_the_page_as_the_operator(
    client, people, apollo_project
):
    client.force_login(people.developer)
    empty = client.get(PAGE)
    assert empty.status_code == 200 and "No items." in empty.content.decode()

    created = client.post(PAGE + "items/new/", {"key": "timeout", "value": "30s", "comment": "first"})
    assert created.status_code == 302 and created["Location"] == PAGE
    item = apollo_project.item("timeout")
    assert (item["value"], item["comment"], item["dataChangeCreatedBy"]) == ("30s", "first", "dora-dev")
    page = client.get(PAGE).content.decode()
    assert 'data-key="timeout" data-kind="added"' in page  # the diff against the (missing) release

    edited = client.post(
        PAGE + "items/edit/",
        {"key": "timeout", "version": _version(page, "timeout"), "value": "45s", "comment": "slower db"},
    )
    assert edited.status_code == 302
    item = apollo_project.item("timeout")
    assert (item["value"], item["comment"], item["dataChangeLastModifiedBy"]) == (
        "45s",
        "slower db",
        "dora-dev",
    )

    released = client.post(PAGE + "release/", {"title": "timeout 45s", "comment": "for the slow db"})
    assert released.status_code == 302
    latest = apollo_project.latest()
    assert latest["name"] == "timeout 45s" and latest["dataChangeCreatedBy"] == "dora-dev"
    assert latest["configurations"] == {"timeout": "45s"}
    record = ConfigRelease.objects.get()
    assert (record.release_id, record.released_by, record.environment) == (latest["id"], "dora-dev", "test")
    page = client.get(PAGE).content.decode()
    assert (
        "Nothing: the items are as release" in page
        and f'data-release="{latest["id"]}" data-state="current"' in page
    )

    # With HTMX the section comes back in place, with the outcome in it.
    deleted = client.post(
        PAGE + "items/delete/",
        {"key": "timeout", "version": _version(page, "timeout")},
        HTTP_HX_REQUEST="true",
    )
    assert deleted.status_code == 200
    section = deleted.content.decode()
    assert section.lstrip().startswith('<div id="apollo-namespace"') and "timeout deleted." in section
    assert 'data-key="timeout" data-kind="removed"' in section
    assert apollo_project.item("timeout") is None
    delete_calls = [r for r in apollo_project.server.requests if r.method == "DELETE"]
    assert delete_calls[-1].query["operator"] == ["dora-dev"]

    create, update, release, delete = (
        _audits(v)
        for v in ("apollo.item.create", "apollo.item.update", "apollo.release", "apollo.item.delete")
    )
    assert [e.actor for e in create + update + release + delete] == [people.developer] * 4
    assert create[0].changes["key"] == "timeout" and create[0].changes["value"] == [None, "30s"]
    assert update[0].changes["value"] == ["30s", "45s"] and update[0].changes["comment"] == [
        "first",
        "slower db",
    ]
    assert release[0].changes["release_id"] == latest["id"] and release[0].changes["title"] == "timeout 45s"
    for event in create + update + release + delete:
        assert event.project == people.project
        assert (event.changes["environment"], event.changes["apollo_env"], event.changes["namespace"]) == (
            "test",
            "FAT",
            "application",
        )


def test_the_api_twins_create_edit_release_and_list(people, apollo_project):
    dev = api_as(people.developer)
    created = dev.post(API + "items/", {"key": "pool.size", "value": "8", "comment": "start"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["key"] == "pool.size" and created.json()["modified_by"] == "dora-dev"

    namespace = dev.get(API).json()
    assert namespace["apollo_env"] == "FAT" and namespace["app_id"] == apollo_project.app_id
    assert namespace["may_edit"] is True and namespace["latest"] is None
    assert namespace["diff"] == [{"key": "pool.size", "kind": "added", "old": None, "new": "8"}]
    version = namespace["items"][0]["version"]

    updated = dev.put(API + "items/pool.size", {"value": "16", "version": version}, format="json")
    assert updated.status_code == 200, updated.content
    assert updated.json()["value"] == "16" and updated.json()["comment"] == "start"  # omitted: kept
    assert apollo_project.item("pool.size")["value"] == "16"
    assert dev.get(API + "items/pool.size").json()["version"] == updated.json()["version"] != version

    release = dev.post(API + "releases/", {"title": "pool 16"}, format="json")
    assert release.status_code == 201, release.content
    assert release.json()["release_id"] == apollo_project.latest()["id"]
    history = dev.get(API + "releases/").json()
    assert [(h["title"], h["state"], h["undo_count"]) for h in history] == [("pool 16", "current", 1)]
    assert dev.get(API).json()["diff"] == []

    # A key that needs encoding in Apollo's path travels URL-encoded here.
    slash = dev.post(API + "items/", {"key": "paths/api v1", "value": "/v1"}, format="json")
    assert slash.status_code == 201, slash.content
    assert dev.get(API + "items/paths%2Fapi%20v1").json()["value"] == "/v1"
    assert dev.delete(API + "items/paths%2Fapi%20v1").status_code == 204
    assert dev.get(API + "items/paths%2Fapi%20v1").status_code == 404


def test_a_stale_edit_is_refused_naming_who_changed_it_and_nothing_is_written(client, people, apollo_project):
    apollo_project.edit_outside("feature.x", "off")
    client.force_login(people.developer)
    version = _version(client.get(PAGE).content.decode(), "feature.x")
    apollo_project.edit_outside("feature.x", "on")  # meanwhile, in Apollo's own portal

    refused = client.post(
        PAGE + "items/edit/", {"key": "feature.x", "version": version, "value": "maybe", "comment": ""}
    )
    assert refused.status_code == 409
    text = refused.content.decode()
    assert f"feature.x was changed by {OUTSIDE_USER}" in text and "Its value is now: on." in text
    assert text.count("Nothing was saved") == 1  # above the namespace, once
    assert apollo_project.item("feature.x")["value"] == "on"
    assert not _audits("apollo.item.update")

    api = api_as(people.developer).put(
        API + "items/feature.x", {"value": "x", "version": version}, format="json"
    )
    assert api.status_code == 409 and OUTSIDE_USER in api.json()["detail"]
    gone = api_as(people.developer).delete(API + f"items/feature.x?version={version}")
    assert gone.status_code == 409 and apollo_project.item("feature.x")["value"] == "on"
    # Deleted meanwhile: said so.
    fresh = api_as(people.developer).get(API + "items/feature.x").json()["version"]
    apollo_project.open_api(
        "DELETE",
        f"{apollo_project.namespace_path()}/items/feature.x",
        params={"operator": OUTSIDE_USER},
    )
    deleted = api_as(people.developer).put(
        API + "items/feature.x", {"value": "x", "version": fresh}, format="json"
    )
    assert (
        deleted.status_code == 409
        and "was deleted from Apollo after you loaded it" in deleted.json()["detail"]
    )
    assert apollo_project.item("feature.x") is None


def test_secret_looking_values_never_come_back_and_are_write_only(client, people, apollo_project):
    dev = api_as(people.developer)
    created = dev.post(
        API + "items/", {"key": "db.password", "value": SECRET, "comment": "db"}, format="json"
    )
    assert created.status_code == 201 and created.json()["value"] == MASK and created.json()["secret"] is True
    assert apollo_project.item("db.password")["value"] == SECRET
    answers = [
        created.content.decode(),
        dev.get(API).content.decode(),
        dev.get(API + "items/db.password").content.decode(),
    ]
    client.force_login(people.developer)
    page = client.get(PAGE).content.decode()
    answers.append(page)

    # The page's edit field starts empty; left empty, the value stays and only the comment changes.
    kept = client.post(
        PAGE + "items/edit/",
        {
            "key": "db.password",
            "version": _version(page, "db.password"),
            "value": "",
            "comment": "rotated soon",
        },
    )
    assert kept.status_code == 302
    stored = apollo_project.item("db.password")
    assert (stored["value"], stored["comment"]) == (SECRET, "rotated soon")
    replaced = dev.put(API + "items/db.password", {"value": SECRET + "-2"}, format="json")
    assert replaced.status_code == 200 and replaced.json()["value"] == MASK
    assert apollo_project.item("db.password")["value"] == SECRET + "-2"
    release = dev.post(API + "releases/", {"title": "secrets"}, format="json")
    answers += [replaced.content.decode(), release.content.decode(), dev.get(API).content.decode()]
    answers.append(client.get(PAGE).content.decode())
    answers.append(client.get("/projects/orders/?tab=audit").content.decode())
    # A refused new item (the key exists) comes back without the secret it was given.
    again = client.post(PAGE + "items/new/", {"key": "db.password", "value": SECRET, "comment": ""})
    assert again.status_code == 409 and "already exists" in again.content.decode()
    answers.append(again.content.decode())

    for text in answers:
        assert SECRET not in text
    events = AuditEvent.objects.filter(verb__startswith="apollo.item")
    assert events.count() == 3
    for event in events:
        assert SECRET not in str(event.changes)
    assert events.get(verb="apollo.item.create").changes["value"] == [None, MASK]


def test_rolling_back_to_an_earlier_release_undoes_each_later_one_as_confirmed(people, apollo_project):
    dev = api_as(people.developer)
    dev.post(API + "items/", {"key": "level", "value": "1"}, format="json")
    ids = []
    for level in ("1", "2", "3"):
        version = dev.get(API + "items/level").json()["version"]
        assert (
            dev.put(API + "items/level", {"value": level, "version": version}, format="json").status_code
            == 200
        )
        ids.append(
            dev.post(API + "releases/", {"title": f"level {level}"}, format="json").json()["release_id"]
        )
    history = dev.get(API + "releases/").json()
    assert [(h["release_id"], h["state"], h["undo_count"]) for h in history] == [
        (ids[2], "current", 1),
        (ids[1], "active", 1),
        (ids[0], "active", 2),
    ]

    # What the page showed no longer holds: refused before anything is done.
    wrong_count = dev.post(
        API + "rollback/", {"to_release": ids[0], "current": ids[2], "count": 1}, format="json"
    )
    assert wrong_count.status_code == 409 and "undoes 2 releases, not the 1" in wrong_count.json()["detail"]
    stale = dev.post(API + "rollback/", {"to_release": ids[0], "current": ids[1], "count": 2}, format="json")
    assert stale.status_code == 409 and f"is now #{ids[2]}" in stale.json()["detail"]
    assert apollo_project.latest()["id"] == ids[2]

    apollo_project.server.clear_requests()
    done = dev.post(API + "rollback/", {"to_release": ids[0], "current": ids[2], "count": 2}, format="json")
    assert done.status_code == 200, done.content
    assert done.json()["undone"] == [ids[2], ids[1]] and done.json()["current"]["id"] == ids[0]
    latest = apollo_project.latest()
    assert latest["id"] == ids[0] and latest["configurations"] == {"level": "1"}
    rollbacks = [r for r in apollo_project.server.requests if r.path.endswith("/rollback")]
    assert [r.path.split("/")[-2] for r in rollbacks] == [str(ids[2]), str(ids[1])]
    assert all(r.query["operator"] == ["dora-dev"] for r in rollbacks)
    abandoned = {
        r["id"]: r["isAbandoned"]
        for r in apollo_project.server.release_history("FAT", apollo_project.app_id, "default", "application")
    }
    assert abandoned == {ids[0]: False, ids[1]: True, ids[2]: True}
    events = _audits("apollo.rollback")
    assert [(e.changes["release_id"], e.changes["step"], e.actor) for e in events] == [
        (ids[2], "1/2", people.developer),
        (ids[1], "2/2", people.developer),
    ]
    history = dev.get(API + "releases/").json()
    assert [(h["state"], h["rolled_back_by"]) for h in history] == [
        ("rolled_back", "dora-dev"),
        ("rolled_back", "dora-dev"),
        ("current", ""),
    ]
    # Apollo keeps its only active release: said as a sentence.
    only = dev.post(API + "rollback/", {"to_release": None, "current": ids[0], "count": 1}, format="json")
    assert only.status_code == 409 and "no earlier release to go back to" in only.json()["detail"]


def test_a_rollback_that_meets_a_release_made_outside_the_portal_stops_and_says_so(
    client, people, apollo_project
):
    dev = api_as(people.developer)
    dev.post(API + "items/", {"key": "k", "value": "portal-1"}, format="json")
    first = dev.post(API + "releases/", {"title": "portal 1"}, format="json").json()["release_id"]
    apollo_project.edit_outside("k", "outside")
    outside = apollo_project.release_outside("hotfix in Apollo")
    apollo_project.edit_outside("k", "portal-2")
    second = dev.post(API + "releases/", {"title": "portal 2"}, format="json").json()["release_id"]

    # The portal knows two releases: going back to the first looks like one rollback.
    history = dev.get(API + "releases/").json()
    assert [(h["release_id"], h["undo_count"]) for h in history] == [(second, 1), (first, 1)]
    partial = dev.post(API + "rollback/", {"to_release": first, "current": second, "count": 1}, format="json")
    assert partial.status_code == 502
    detail = partial.json()["detail"]
    assert f"Rolled back 1 of 1 releases (#{second})" in detail and f"now #{outside}, not #{first}" in detail
    assert apollo_project.latest()["id"] == outside
    assert len(_audits("apollo.rollback")) == 1

    # The page now shows Apollo's current release, made outside the portal, and undoes it.
    client.force_login(people.developer)
    page = client.get(PAGE).content.decode()
    assert f'data-release="{outside}" data-state="current"' in page and "outside the portal" in page
    undone = client.post(PAGE + "rollback/", {"current": outside, "count": 1}, HTTP_HX_REQUEST="true")
    assert undone.status_code == 200 and "Rolled back 1 release(s)" in undone.content.decode()
    assert apollo_project.latest()["id"] == first
    recorded = ConfigRelease.objects.get(release_id=outside)
    assert (
        not recorded.by_portal
        and recorded.rolled_back_by == "dora-dev"
        and recorded.released_by == OUTSIDE_USER
    )


def test_production_is_for_ops_unless_ops_let_the_owners(client, people, apollo_project):
    prod = API.replace("/test/", "/prod/")
    owner = api_as(people.owner)
    refused = owner.post(prod + "items/", {"key": "replicas", "value": "3"}, format="json")
    assert refused.status_code == 403 and apollo_project.item("replicas", env="PRO") is None
    assert (
        api_as(people.developer).post(prod + "items/", {"key": "x", "value": "1"}, format="json").status_code
        == 403
    )
    assert owner.get(prod).json()["may_edit"] is False

    flag = api_as(people.ops).patch(
        "/api/projects/orders/apollo/settings/", {"owner_may_edit_prod": True}, format="json"
    )
    assert flag.status_code == 200
    allowed = owner.post(prod + "items/", {"key": "replicas", "value": "3"}, format="json")
    assert allowed.status_code == 201
    assert apollo_project.item("replicas", env="PRO")["dataChangeCreatedBy"] == "oscar-owner"
    assert apollo_project.item("replicas", env="FAT") is None
    assert owner.post(prod + "releases/", {"title": "prod by owner"}, format="json").status_code == 201
    assert apollo_project.latest(env="PRO")["dataChangeCreatedBy"] == "oscar-owner"
    # Still not the developers'.
    assert (
        api_as(people.developer).post(prod + "items/", {"key": "y", "value": "1"}, format="json").status_code
        == 403
    )


@pytest.mark.parametrize("role", ["tester", "viewer", "qa"])
def test_testers_viewers_and_qa_read_only(client, people, apollo_project, role):
    apollo_project.edit_outside("timeout", "30s")
    user = getattr(people, role)
    client.force_login(user)
    page = client.get(PAGE)
    assert page.status_code == 200
    html = page.content.decode()
    assert "30s" in html and "Read only" in html
    assert "apollo-item-create" not in html and "apollo-release-form" not in html
    assert client.post(PAGE + "items/new/", {"key": "a", "value": "b"}).status_code == 403
    api = api_as(user)
    assert api.get(API).json()["may_edit"] is False
    assert api.post(API + "items/", {"key": "a", "value": "b"}, format="json").status_code == 403
    assert api.post(API + "releases/", {"title": "t"}, format="json").status_code == 403
    assert apollo_project.item("a") is None and apollo_project.latest() is None


def test_outsiders_get_404_everywhere(client, people, apollo_project):
    client.force_login(people.outsider)
    for path in ("/projects/orders/apollo/", PAGE):
        assert client.get(path).status_code == 404
    assert client.post(PAGE + "items/new/", {"key": "a", "value": "b"}).status_code == 404
    api = api_as(people.outsider)
    assert api.get(API).status_code == 404
    assert api.post(API + "items/", {"key": "a", "value": "b"}, format="json").status_code == 404
    assert api.post(API + "rollback/", {"current": 1, "count": 1}, format="json").status_code == 404


def test_apollos_refusals_become_clear_messages(client, people, apollo_project, apollo_server):
    ops = api_as(people.ops)
    client.force_login(people.ops)

    # 404: a namespace the settings list but Apollo does not have.
    apollo_project.settings.namespaces = ["application", "ghost"]
    apollo_project.settings.save()
    ghost = ops.get(API.replace("/application/", "/ghost/"))
    assert ghost.status_code == 404 and "Apollo has no FAT/" in ghost.json()["detail"]
    assert set(ghost.json()) == {"detail", "errors"}
    page = client.get(PAGE.replace("/application/", "/ghost/"))
    assert page.status_code == 200 and "Apollo has no FAT/" in page.content.decode()
    assert ops.get(API.replace("/application/", "/nowhere/")).status_code == 404  # not in the settings

    # 403: a token granted test only.
    limited = "ab" * 20
    apollo_server.add_consumer(limited, {apollo_project.app_id: {"FAT": "*"}})
    apollo_project.settings.token = limited
    apollo_project.settings.save()
    prod = ops.post(API.replace("/test/", "/prod/") + "items/", {"key": "a", "value": "1"}, format="json")
    assert prod.status_code == 502 and "403" in prod.json()["detail"] and "grant" in prod.json()["detail"]
    form = client.post(PAGE.replace("/test/", "/prod/") + "items/new/", {"key": "a", "value": "1"})
    assert form.status_code == 502 and "grant the token" in form.content.decode()
    assert ops.post(API + "items/", {"key": "a", "value": "1"}, format="json").status_code == 201

    # 401: a token Apollo does not know.
    apollo_project.settings.token = "0" * 40
    apollo_project.settings.save()
    unknown = ops.get(API)
    assert unknown.status_code == 502 and "(401)" in unknown.json()["detail"]
    assert "does not know the project&#x27;s Open API token" in client.get(PAGE).content.decode()
    apollo_project.settings.token = ""
    apollo_project.settings.save()
    untokened = ops.get(API)
    assert untokened.status_code == 502 and "no Open API token" in untokened.json()["detail"]
    apollo_project.settings.token = apollo_project.token
    apollo_project.settings.save()

    # 400: a portal user Apollo does not know.
    stranger = User.objects.create_user("nina-new-ops")
    stranger.groups.set(people.ops.groups.all())
    refused = api_as(stranger).post(API + "items/", {"key": "b", "value": "1"}, format="json")
    assert refused.status_code == 400 and "does not know the user nina-new-ops" in refused.json()["detail"]

    # 409: the key exists already.
    exists = ops.post(API + "items/", {"key": "a", "value": "2"}, format="json")
    assert exists.status_code == 409 and "already exists" in exists.json()["detail"]

    # 5xx and no answer.
    apollo_server.inject_fault(f"/apps/{apollo_project.app_id}/", 500)
    failed = ops.get(API)
    assert failed.status_code == 502 and "Apollo failed" in failed.json()["detail"]
    with pytest.MonkeyPatch.context() as patch:
        from django.conf import settings

        patch.setattr(settings, "APOLLO_PORTAL_URL", "http://127.0.0.1:9")
        silent = ops.get(API)
        assert silent.status_code == 502 and "Apollo did not answer" in silent.json()["detail"]
        patch.setattr(settings, "APOLLO_PORTAL_URL", "")
        off = ops.get(API)
        assert off.status_code == 502 and "APOLLO_PORTAL_URL" in off.json()["detail"]
        assert "APOLLO_PORTAL_URL" in client.get(PAGE).content.decode()
    assert not _audits("apollo.item.update")


def test_other_code_applies_a_change_set_and_reads_the_current_release(people, apollo_project):
    apollo_project.edit_outside("gone", "soon")
    assert config_release_current(project=people.project, env="test", namespace="application") is None
    changes = [
        ConfigChange("a", "1", "set by release 7"),
        ConfigChange("gone", None),
        ConfigChange("never", None),
    ]

    release_id = config_changes_apply(
        project=people.project,
        env="test",
        namespace="application",
        changes=changes,
        operator=people.developer,
        title="release 7",
        comment="with its config",
    )

    assert release_id == config_release_current(project=people.project, env="test", namespace="application")
    latest = apollo_project.latest()
    assert latest["configurations"] == {"a": "1"} and latest["dataChangeCreatedBy"] == "dora-dev"
    assert apollo_project.item("a")["comment"] == "set by release 7"
    assert config_release_current(project=people.project, env="prod", namespace="application") is None
    # The same set again gives the same namespace, and a new release.
    again = config_changes_apply(
        project=people.project,
        env="test",
        namespace="application",
        changes=changes,
        operator=people.developer,
        title="release 7 again",
    )
    assert again > release_id and apollo_project.latest()["configurations"] == {"a": "1"}
    assert [e.changes["key"] for e in _audits("apollo.item.update")] == ["a", "a"]
    assert len(_audits("apollo.release")) == 2


def test_the_pages_speak_chinese(client, people, apollo_project):
    apollo_project.edit_outside("feature.x", "off")
    client.force_login(people.developer)
    client.post("/language/", {"language": "zh-hans", "next": "/"})
    page = client.get(PAGE).content.decode()
    assert "Apollo 配置" in page and "新增配置项" in page and "尚未发布的变更" in page
    version = _version(page, "feature.x")
    apollo_project.edit_outside("feature.x", "on")
    refused = client.post(PAGE + "items/edit/", {"key": "feature.x", "version": version, "value": "x"})
    assert refused.status_code == 409
    assert f"feature.x 在你加载页面之后被 {OUTSIDE_USER}" in refused.content.decode()
    assert "Apollo AppId" in client.get("/projects/orders/apollo/").content.decode()
