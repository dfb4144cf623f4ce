"""The portal's only way to talk to GitLab (REST v4 through python-gitlab).

Every request has a timeout; python-gitlab's own retries are off (``retry_transient_errors=False`` and
``obey_rate_limit=False``) because the Celery tasks that call us retry transient errors with backoff. Each
failure becomes an ``integrations.errors`` class. Projects are addressed by their full path and fetched
lazily, so each call below is one HTTP request (contract 2.3). A 429 or 503 carries GitLab's
``Retry-After`` (seconds) on the error as ``retry_after``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import gitlab
import requests
from gitlab.exceptions import GitlabAuthenticationError, GitlabError, GitlabParsingError, RedirectError

from integrations.errors import (
    Conflict,
    IntegrationError,
    Invalid,
    NotFound,
    ServerError,
    Timeout,
    Unauthorized,
    Unreachable,
    parse_retry_after,
)

DEFAULT_TIMEOUT = 15.0  # seconds, connect and read
PER_PAGE = 100  # GitLab's maximum page size

T = TypeVar("T")


# --- small results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Project:
    id: int
    path_with_namespace: str
    default_branch: str
    http_url_to_repo: str
    web_url: str


@dataclass(frozen=True)
class Branch:
    name: str
    commit_sha: str


@dataclass(frozen=True)
class Commit:
    sha: str
    short_sha: str
    title: str
    author_name: str
    committed_date: str
    web_url: str


@dataclass(frozen=True)
class Tag:
    name: str
    commit_sha: str
    created: bool = False  # True only when this call created it
    message: str = ""
    committed_date: str = ""  # the tagged commit's, ISO 8601 as GitLab writes it


# --- error mapping ------------------------------------------------------------------------------------


def _status_error(code: int, message: str, retry_after: float | None = None) -> IntegrationError:
    kwargs: dict[str, Any] = {"cause": message, "status": code or None, "retry_after": retry_after}
    if code == 401:
        return Unauthorized("GitLab rejected the token", **kwargs)
    if code == 403:
        return Unauthorized("the GitLab token lacks the permission for this", **kwargs)
    if code == 404:
        return NotFound(message, **kwargs)
    if code == 409:
        return Conflict(message, **kwargs)
    if code in (400, 422):
        return Invalid(message, causes=[{"field": "", "message": message}], **kwargs)
    if code == 429 or code >= 500:
        return ServerError(f"GitLab answered {code}", **kwargs)
    return IntegrationError(message, **kwargs)


def _response_message(response: requests.Response) -> str:
    # The same fields python-gitlab reads from an error body.
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "error"):
            if body.get(key):
                return str(body[key])
    return response.reason or f"HTTP {response.status_code}"


def error_from_gitlab(exc: Exception) -> IntegrationError:
    """Map a python-gitlab or requests exception to the portal's error classes."""
    if isinstance(exc, requests.exceptions.Timeout):  # before ConnectionError: ConnectTimeout is both
        return Timeout("GitLab did not answer in time", cause=str(exc))
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return Unreachable("cannot connect to GitLab", cause=str(exc))
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        response = exc.response
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return _status_error(response.status_code, _response_message(response), retry_after)
    if isinstance(exc, RedirectError):
        return Invalid("GitLab redirected the request: check the configured URL and scheme", cause=str(exc))
    if isinstance(exc, GitlabParsingError):
        return ServerError("GitLab sent an answer that is not JSON", cause=str(exc))
    if not isinstance(exc, GitlabError):
        return IntegrationError("GitLab request failed", cause=str(exc), permanent=False)
    code = exc.response_code or 0
    if isinstance(exc, GitlabAuthenticationError):
        code = 401
    return _status_error(code, str(exc.error_message or "") or f"HTTP {code}")


def _raise_for_retry_later(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """requests response hook: raise 429 and 503 as ``HTTPError`` before python-gitlab sees them.

    python-gitlab's exceptions keep the status and body but drop the headers, and ``Retry-After`` is a
    header; with its own retries off nothing else in python-gitlab looks at these answers.
    """
    if response.status_code in (429, 503):
        raise requests.exceptions.HTTPError(f"{response.status_code} {response.reason}", response=response)


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except (GitlabError, requests.exceptions.RequestException) as exc:
        raise error_from_gitlab(exc) from exc


def _tag(obj: Any, *, created: bool) -> Tag:
    commit = obj.commit or {}
    return Tag(
        name=obj.name,
        commit_sha=commit.get("id", ""),
        created=created,
        message=obj.message or "",
        committed_date=commit.get("committed_date") or "",
    )


# --- the client ---------------------------------------------------------------------------------------


class _Gitlab(gitlab.Gitlab):
    """python-gitlab that never sleeps and retries by itself: 429 and 5xx go straight to the caller."""

    def http_request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["obey_rate_limit"] = False
        kwargs["retry_transient_errors"] = False
        return super().http_request(*args, **kwargs)


class GitLabClient:
    def __init__(self, url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not url:
            raise Invalid("GitLab is not configured (no URL)")
        self.url = url.rstrip("/")
        self._gl = _Gitlab(
            self.url,
            private_token=token,
            timeout=timeout,
            per_page=PER_PAGE,
            retry_transient_errors=False,
            user_agent="opsportal",
        )
        self._gl.session.hooks["response"].append(_raise_for_retry_later)

    def _project(self, path: str) -> Any:
        # lazy: no GET; sub-resources are requested as /projects/<url-encoded path>/...
        return self._gl.projects.get(path, lazy=True)

    def project(self, path: str) -> Project:
        p = _call(lambda: self._gl.projects.get(path))
        return Project(
            id=p.id,
            path_with_namespace=p.path_with_namespace,
            default_branch=p.default_branch or "",
            http_url_to_repo=p.http_url_to_repo,
            web_url=p.web_url,
        )

    def branch(self, path: str, name: str) -> Branch:
        b = _call(lambda: self._project(path).branches.get(name))
        return Branch(name=b.name, commit_sha=b.commit["id"])

    def list_branches(self, path: str, search: str = "") -> list[Branch]:
        """Every branch (all pages, following ``Link: rel="next"``), optionally filtered by ``search``."""
        params = {"search": search} if search else {}
        items = _call(lambda: self._project(path).branches.list(get_all=True, **params))
        return [Branch(name=b.name, commit_sha=b.commit["id"]) for b in items]

    def commit(self, path: str, ref: str) -> Commit:
        """The commit a sha, branch or tag resolves to."""
        c = _call(lambda: self._project(path).commits.get(ref))
        return Commit(
            sha=c.id,
            short_sha=c.short_id,
            title=c.title,
            author_name=c.author_name,
            committed_date=c.committed_date,
            web_url=c.web_url,
        )

    def tag(self, path: str, name: str) -> Tag | None:
        try:
            return _tag(_call(lambda: self._project(path).tags.get(name)), created=False)
        except NotFound as exc:
            if "project" in exc.cause.lower():
                raise
            return None

    def ensure_tag(
        self, path: str, tag_name: str, ref: str, message: str = "", *, expected_sha: str | None = None
    ) -> Tag:
        """Create ``tag_name`` on the commit ``ref`` resolves to, or accept it if it is already there.

        ``expected_sha`` pins the commit (a release records the sha it was cut from, so a retry after the
        branch moved still tags the same commit); without it ``ref`` is resolved now. The tag is created on
        the resolved sha, never on the moving ref. Returns ``created=False`` when the tag already pointed at
        that commit, and raises ``Conflict`` when it points elsewhere.
        """
        target = self.commit(path, expected_sha or ref).sha
        data = {"tag_name": tag_name, "ref": target}
        if message:
            data["message"] = message  # annotated; lightweight otherwise
        try:
            created = _call(lambda: self._project(path).tags.create(data))
        except Invalid as exc:
            # GitLab answers 400 (not 409) for an existing tag (contract 2.5 and 10.1).
            if "already exists" not in exc.cause:
                raise
        else:
            return _tag(created, created=True)
        existing = self.tag(path, tag_name)
        if existing is None:  # deleted between our create and get: let the task retry
            raise Conflict(f"tag {tag_name} vanished while it was being checked", permanent=False)
        if existing.commit_sha != target:
            raise Conflict(
                f"tag {tag_name} already exists on another commit",
                cause=f"tag is on {existing.commit_sha[:12]}, release wants {target[:12]}",
                details={"tag": tag_name, "existing_sha": existing.commit_sha, "wanted_sha": target},
            )
        return existing
