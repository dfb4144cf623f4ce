"""The GitLab stand-in, driven by the real python-gitlab client, over real bare repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import gitlab
import pytest
import requests

from sandbox.gitlab import GitLabStandin, Project
from tests.fixtures.standins import DEMO_REPOS, GITLAB_TOKEN

pytestmark = pytest.mark.standins


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def project(gitlab_standin: GitLabStandin) -> Project:
    return gitlab_standin.create_project("demo/go-hello", DEMO_REPOS / "go-hello")


@pytest.fixture
def client(gitlab_standin: GitLabStandin) -> gitlab.Gitlab:
    return gitlab.Gitlab(gitlab_standin.url, private_token=GITLAB_TOKEN, timeout=10)


def test_auth_version_and_project_by_path_and_id(client: gitlab.Gitlab, project: Project) -> None:
    client.auth()
    assert client.user is not None and client.user.username == "root"
    assert client.version()[0].startswith("17.")
    by_path = client.projects.get("demo/go-hello")
    assert by_path.id == project.id
    assert by_path.default_branch == "main"
    assert by_path.http_url_to_repo == f"{client.url}/demo/go-hello.git"
    assert client.projects.get(project.id).path_with_namespace == "demo/go-hello"


def test_bad_token_is_authentication_error(gitlab_standin: GitLabStandin, project: Project) -> None:
    bad = gitlab.Gitlab(gitlab_standin.url, private_token="wrong")
    with pytest.raises(gitlab.GitlabAuthenticationError) as excinfo:
        bad.projects.get("demo/go-hello")
    assert excinfo.value.response_code == 401


def test_unknown_project_is_404(client: gitlab.Gitlab) -> None:
    with pytest.raises(gitlab.GitlabGetError) as excinfo:
        client.projects.get("nope/nothing")
    assert excinfo.value.response_code == 404
    assert excinfo.value.error_message == "404 Project Not Found"


def test_branches_paginate_over_link_next(
    gitlab_standin: GitLabStandin, client: gitlab.Gitlab, project: Project
) -> None:
    for i in range(24):
        gitlab_standin.create_branch(project, f"feature/f{i:02d}", "main")
    remote = client.projects.get(project.id)
    first_page = remote.branches.list(get_all=False)
    assert len(first_page) == 20
    every = remote.branches.list(iterator=True)
    names = [b.name for b in every]
    assert every.total == 25 and every.total_pages == 2
    assert len(names) == 25 and "main" in names and "feature/f23" in names
    branch = remote.branches.get("feature/f07")
    assert branch.commit["id"] == _git(project.bare, "rev-parse", "main").strip()
    with pytest.raises(gitlab.GitlabGetError) as excinfo:
        remote.branches.get("missing")
    assert excinfo.value.error_message == "404 Branch Not Found"
    assert [b.name for b in remote.branches.list(search="f1", get_all=True)][:2] == [
        "feature/f10",
        "feature/f11",
    ]


def test_create_tags_are_real_git_tags(client: gitlab.Gitlab, project: Project) -> None:
    remote = client.projects.get("demo/go-hello")
    head = _git(project.bare, "rev-parse", "main").strip()
    annotated = remote.tags.create({"tag_name": "v1.0.0", "ref": "main", "message": "release 1.0.0"})
    assert annotated.commit["id"] == head
    assert annotated.message == "release 1.0.0"
    assert annotated.target != head  # the tag object, as for an annotated tag in GitLab
    lightweight = remote.tags.create({"tag_name": "v1.0.1", "ref": head})
    assert lightweight.target == head and lightweight.message == ""
    assert _git(project.bare, "tag", "-l").split() == ["v1.0.0", "v1.0.1"]
    assert _git(project.bare, "cat-file", "-t", "v1.0.0").strip() == "tag"
    assert _git(project.bare, "cat-file", "-t", "v1.0.1").strip() == "commit"
    assert remote.tags.get("v1.0.0").commit["id"] == head
    assert remote.commits.get("v1.0.0").id == head
    assert [t.name for t in remote.tags.list(order_by="name", sort="asc", get_all=True)] == [
        "v1.0.0",
        "v1.0.1",
    ]
    remote.tags.delete("v1.0.1")
    assert _git(project.bare, "tag", "-l").split() == ["v1.0.0"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"tag_name": "v1", "ref": "main"}, "Tag v1 already exists"),
        ({"tag_name": "v2", "ref": "no-such-branch"}, "Target no-such-branch is invalid"),
        ({"tag_name": "bad..name", "ref": "main"}, "Tag name invalid"),
        ({"tag_name": "v3", "ref": ""}, "Target is empty"),
        ({"tag_name": "--upload-pack=x", "ref": "main"}, "Tag name invalid"),
        ({"tag_name": "v4", "ref": "--output=/tmp/x"}, "Target --output=/tmp/x is invalid"),
    ],
)
def test_tag_create_failures_are_400(
    client: gitlab.Gitlab, project: Project, payload: dict[str, str], message: str
) -> None:
    remote = client.projects.get(project.id)
    remote.tags.create({"tag_name": "v1", "ref": "main"})
    with pytest.raises(gitlab.GitlabCreateError) as excinfo:
        remote.tags.create(payload)
    assert excinfo.value.response_code == 400
    assert excinfo.value.error_message == message
    assert _git(project.bare, "tag", "-l").split() == ["v1"]


def test_git_clone_at_tag_over_smart_http(client: gitlab.Gitlab, project: Project, tmp_path: Path) -> None:
    remote = client.projects.get(project.id)
    remote.tags.create({"tag_name": "v1.2.3", "ref": "main", "message": "r"})
    dest = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", "--depth", "1", "--branch", "v1.2.3", remote.http_url_to_repo, str(dest)],
        check=True,
        capture_output=True,
    )
    assert (dest / "main.go").is_file()
    push = subprocess.run(
        ["git", "-C", str(dest), "push", "origin", "HEAD:refs/heads/x"], capture_output=True
    )
    assert push.returncode != 0  # the HTTP side is read-only


def test_projects_survive_restart(tmp_path: Path) -> None:
    first = GitLabStandin(tmp_path / "gl", GITLAB_TOKEN)
    created = first.create_project("team/svc", DEMO_REPOS / "static-site")
    second = GitLabStandin(tmp_path / "gl", GITLAB_TOKEN)
    found = second.find_project("team/svc")
    assert found is not None and found.id == created.id


def test_fault_admin_endpoint_and_clear(
    gitlab_standin: GitLabStandin, client: gitlab.Gitlab, project: Project
) -> None:
    # `make run` runs the stand-in in another process: faults go in over HTTP, with the token.
    admin = f"{gitlab_standin.url}/api/v4/_standin/faults"
    headers = {"PRIVATE-TOKEN": GITLAB_TOKEN}
    assert requests.post(admin, json={"pattern": "/repository/branches"}, timeout=5).status_code == 401
    spec = {"pattern": "/repository/branches/main", "status": 429, "count": 5, "retry_after": 3}
    assert requests.post(admin, json=spec, headers=headers, timeout=5).status_code == 201
    answer = requests.get(
        f"{gitlab_standin.url}/api/v4/projects/demo%2Fgo-hello/repository/branches/main",
        headers=headers,
        timeout=5,
    )
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "3"
    assert answer.json() == {"message": "429 Too Many Requests"}
    assert requests.delete(admin, headers=headers, timeout=5).status_code == 204
    assert client.projects.get("demo/go-hello").branches.get("main").name == "main"
    assert gitlab_standin.request_count(r"/repository/branches/main$", "GET") == 2


def test_sync_project_commits_changed_sources_only(gitlab_standin: GitLabStandin, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "a.py").write_text("A = 1\n")
    (source / "old.txt").write_text("old\n")
    created = gitlab_standin.sync_project("ops/pkg", source)
    first = _git(created.bare, "rev-parse", "main").strip()

    assert gitlab_standin.sync_project("ops/pkg", source).id == created.id
    assert _git(created.bare, "rev-parse", "main").strip() == first  # unchanged: no new commit

    (source / "pkg" / "a.py").write_text("A = 2\n")
    (source / "old.txt").unlink()
    gitlab_standin.sync_project("ops/pkg", source, message="a is 2")
    assert _git(created.bare, "rev-parse", "main~1").strip() == first
    assert _git(created.bare, "log", "-1", "--format=%s", "main").strip() == "a is 2"
    assert _git(created.bare, "ls-tree", "-r", "--name-only", "main").split() == ["pkg/a.py"]
    assert _git(created.bare, "show", "main:pkg/a.py") == "A = 2\n"
