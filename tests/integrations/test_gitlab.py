"""GitLabClient against the GitLab stand-in (real bare git repositories), through real python-gitlab."""

from __future__ import annotations

import socket

import pytest

from integrations.errors import (
    Conflict,
    Invalid,
    NotFound,
    ServerError,
    Timeout,
    Unauthorized,
    Unreachable,
    parse_retry_after,
)
from integrations.gitlab import Branch, GitLabClient, Tag
from sandbox.gitlab import GitLabStandin, Project
from sandbox.gitlab.git import run_git
from tests.fixtures.standins import DEMO_REPOS, GITLAB_TOKEN

pytestmark = pytest.mark.standins


@pytest.fixture
def project(gitlab_standin: GitLabStandin) -> Project:
    return gitlab_standin.create_project("demo/go-hello", DEMO_REPOS / "go-hello")


@pytest.fixture
def client(gitlab_standin: GitLabStandin) -> GitLabClient:
    return GitLabClient(gitlab_standin.url, GITLAB_TOKEN, timeout=10)


def _sha(project: Project, ref: str) -> str:
    return run_git(project.bare, "rev-parse", f"{ref}^{{commit}}").strip()


def _advance(project: Project, branch: str = "main") -> str:
    """Add an empty commit on ``branch`` in the bare repository and return its sha."""
    parent = _sha(project, branch)
    sha = run_git(project.bare, "commit-tree", f"{parent}^{{tree}}", "-p", parent, "-m", "next").strip()
    run_git(project.bare, "update-ref", f"refs/heads/{branch}", sha, parent)
    return sha


def test_project_branch_and_commit(client: GitLabClient, project: Project) -> None:
    info = client.project("demo/go-hello")
    assert info.id == project.id
    assert info.default_branch == "main"
    assert info.http_url_to_repo.endswith("/demo/go-hello.git")
    main = _sha(project, "main")
    assert client.branch("demo/go-hello", "main") == Branch("main", main)
    commit = client.commit("demo/go-hello", "main")
    assert commit.sha == main and commit.short_sha == main[:8]
    assert client.commit("demo/go-hello", main[:10]).sha == main


def test_list_branches_follows_every_page(
    gitlab_standin: GitLabStandin, client: GitLabClient, project: Project
) -> None:
    for i in range(105):  # more than one page of 100
        gitlab_standin.create_branch(project, f"feature/f{i:03d}", "main")
    names = [b.name for b in client.list_branches("demo/go-hello")]
    assert len(names) == 106 and "main" in names and "feature/f104" in names
    found = client.list_branches("demo/go-hello", search="f10")
    assert sorted(b.name for b in found) == [f"feature/f{i}" for i in range(100, 105)]


def test_missing_things_are_not_found(client: GitLabClient, project: Project) -> None:
    with pytest.raises(NotFound) as excinfo:
        client.project("nope/nothing")
    assert excinfo.value.permanent and excinfo.value.status == 404
    with pytest.raises(NotFound):
        client.branch("demo/go-hello", "no-such-branch")
    with pytest.raises(NotFound):
        client.commit("demo/go-hello", "no-such-ref")
    assert client.tag("demo/go-hello", "v9.9.9") is None
    with pytest.raises(NotFound):  # a missing project is not "no such tag"
        client.tag("nope/nothing", "v1")


def test_ensure_tag_creates_a_real_annotated_git_tag(client: GitLabClient, project: Project) -> None:
    main = _sha(project, "main")
    committed = run_git(project.bare, "show", "--no-patch", "--format=%cI", main).strip()
    tag = client.ensure_tag("demo/go-hello", "v1.0.0", "main", "release 1.0.0")
    # The tagged commit's time comes with the tag: where a release's lead time starts.
    assert tag == Tag("v1.0.0", main, created=True, message="release 1.0.0", committed_date=committed)
    assert run_git(project.bare, "cat-file", "-t", "refs/tags/v1.0.0").strip() == "tag"
    assert _sha(project, "v1.0.0") == main
    assert client.tag("demo/go-hello", "v1.0.0") == Tag(
        "v1.0.0", main, created=False, message="release 1.0.0", committed_date=committed
    )


def test_ensure_tag_twice_is_a_noop(client: GitLabClient, project: Project) -> None:
    first = client.ensure_tag("demo/go-hello", "v1.0.0", "main", "release")
    second = client.ensure_tag("demo/go-hello", "v1.0.0", "main", "release")
    assert first.created is True and second.created is False
    assert second.commit_sha == first.commit_sha
    assert run_git(project.bare, "tag", "--list").split() == ["v1.0.0"]


def test_ensure_tag_retry_after_branch_moved_uses_the_pinned_sha(
    client: GitLabClient, project: Project
) -> None:
    cut = _sha(project, "main")
    client.ensure_tag("demo/go-hello", "v1.0.0", "main", expected_sha=cut)
    _advance(project)
    again = client.ensure_tag("demo/go-hello", "v1.0.0", "main", expected_sha=cut)
    assert again.created is False and again.commit_sha == cut


def test_ensure_tag_on_another_commit_is_conflict(client: GitLabClient, project: Project) -> None:
    old = _sha(project, "main")
    client.ensure_tag("demo/go-hello", "v1.0.0", "main", "release")
    new = _advance(project)
    with pytest.raises(Conflict) as excinfo:
        client.ensure_tag("demo/go-hello", "v1.0.0", "main", "release")
    assert excinfo.value.permanent
    assert excinfo.value.details == {"tag": "v1.0.0", "existing_sha": old, "wanted_sha": new}
    assert _sha(project, "v1.0.0") == old  # untouched


def test_ensure_tag_lightweight_and_bad_input(client: GitLabClient, project: Project) -> None:
    tag = client.ensure_tag("demo/go-hello", "build-1", "main")
    assert tag.created and run_git(project.bare, "cat-file", "-t", "refs/tags/build-1").strip() == "commit"
    with pytest.raises(Invalid) as excinfo:
        client.ensure_tag("demo/go-hello", "bad..name", "main")
    assert excinfo.value.permanent and excinfo.value.cause == "Tag name invalid"
    with pytest.raises(NotFound):
        client.ensure_tag("demo/go-hello", "v2", "no-such-branch")


def test_bad_token_is_unauthorized_and_permanent(gitlab_standin: GitLabStandin, project: Project) -> None:
    bad = GitLabClient(gitlab_standin.url, "wrong-token", timeout=5)
    with pytest.raises(Unauthorized) as excinfo:
        bad.branch("demo/go-hello", "main")
    assert excinfo.value.permanent and excinfo.value.status == 401


def test_stopped_server_is_unreachable_and_transient(gitlab_standin: GitLabStandin, project: Project) -> None:
    client = GitLabClient(gitlab_standin.url, GITLAB_TOKEN, timeout=5)
    gitlab_standin.stop()
    with pytest.raises(Unreachable) as excinfo:
        client.ensure_tag("demo/go-hello", "v1.0.0", "main")
    assert excinfo.value.permanent is False


def test_unset_url_fails_loudly() -> None:
    with pytest.raises(Invalid):
        GitLabClient("", GITLAB_TOKEN)


def test_silent_server_is_timeout() -> None:
    # A socket that accepts but never answers: python-gitlab's read timeout must fire.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        client = GitLabClient(f"http://127.0.0.1:{port}", GITLAB_TOKEN, timeout=0.5)
        with pytest.raises(Timeout) as excinfo:
            client.branch("demo/go-hello", "main")
    assert excinfo.value.permanent is False


# --- injected faults ----------------------------------------------------------------------------------

TAGS_POST = r"/repository/tags$"


def test_429_with_retry_after_is_transient_and_carries_the_wait(
    gitlab_standin: GitLabStandin, client: GitLabClient, project: Project
) -> None:
    gitlab_standin.inject_fault(r"/repository/branches/main", status=429, retry_after=7)
    with pytest.raises(ServerError) as excinfo:
        client.branch("demo/go-hello", "main")
    assert excinfo.value.permanent is False
    assert excinfo.value.status == 429 and excinfo.value.retry_after == 7
    assert excinfo.value.cause == "429 Too Many Requests"  # GitLab's {"message": ...} body was read
    assert client.branch("demo/go-hello", "main").commit_sha == _sha(project, "main")  # fault used up

    gitlab_standin.inject_fault(r"/repository/branches/main", status=503, retry_after=2)
    with pytest.raises(ServerError) as excinfo:
        client.branch("demo/go-hello", "main")
    assert excinfo.value.status == 503 and excinfo.value.retry_after == 2

    # The HTTP-date form (and rubbish) is ignored: still transient, the caller's own backoff applies.
    gitlab_standin.inject_fault(
        r"/repository/branches/main", status=429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT"
    )
    gitlab_standin.inject_fault(r"/repository/branches/main", status=429, retry_after="soon")
    for _ in range(2):
        with pytest.raises(ServerError) as excinfo:
            client.branch("demo/go-hello", "main")
        assert excinfo.value.status == 429 and excinfo.value.retry_after is None
    gitlab_standin.inject_fault(r"/repository/branches/main", status=429)
    with pytest.raises(ServerError) as excinfo:
        client.branch("demo/go-hello", "main")
    assert excinfo.value.retry_after is None


@pytest.mark.parametrize(
    ("header", "seconds"), [("5", 5.0), (" 0 ", 0.0), ("", None), (None, None), ("-1", None), ("1.5", None)]
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_502_is_a_transient_server_error(
    gitlab_standin: GitLabStandin, client: GitLabClient, project: Project
) -> None:
    gitlab_standin.inject_fault(TAGS_POST, status=502, method="POST")
    with pytest.raises(ServerError) as excinfo:
        client.ensure_tag("demo/go-hello", "v1.0.0", "main")
    assert excinfo.value.permanent is False and excinfo.value.status == 502
    assert excinfo.value.retry_after is None
    assert run_git(project.bare, "tag", "--list").split() == []  # answered before doing anything
    assert client.ensure_tag("demo/go-hello", "v1.0.0", "main").created is True


def test_injected_401_is_unauthorized_and_permanent(
    gitlab_standin: GitLabStandin, client: GitLabClient, project: Project
) -> None:
    gitlab_standin.inject_fault(TAGS_POST, status=401, method="POST")
    with pytest.raises(Unauthorized) as excinfo:
        client.ensure_tag("demo/go-hello", "v1.0.0", "main")
    assert excinfo.value.permanent and excinfo.value.status == 401
    assert run_git(project.bare, "tag", "--list").split() == []


def test_lost_response_on_tag_create_then_ensure_tag_finds_the_tag(
    gitlab_standin: GitLabStandin, client: GitLabClient, project: Project
) -> None:
    gitlab_standin.inject_fault(TAGS_POST, status=502, method="POST", after=True)
    with pytest.raises(ServerError) as excinfo:
        client.ensure_tag("demo/go-hello", "v1.0.0", "main", "release 1.0.0")
    assert excinfo.value.permanent is False and excinfo.value.status == 502
    # GitLab did the work; only its answer was lost.
    assert run_git(project.bare, "tag", "--list").split() == ["v1.0.0"]
    again = client.ensure_tag("demo/go-hello", "v1.0.0", "main", "release 1.0.0")
    assert again == Tag(
        "v1.0.0",
        _sha(project, "main"),
        created=False,
        message="release 1.0.0",
        committed_date=again.committed_date,
    )
    assert again.committed_date
    assert run_git(project.bare, "tag", "--list").split() == ["v1.0.0"]
    assert gitlab_standin.request_count(TAGS_POST, "POST") == 2
