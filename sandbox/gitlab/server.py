"""GitLab v4 stand-in: the subset of the REST API python-gitlab uses for releases, over real bare repos.

Layout on disk: ``<root>/<namespace>/<name>.git`` is the bare repository of project ``namespace/name``. Each
repo remembers its numeric project id in its own git config (``standin.projectid``) so ids survive restarts.
Git itself is served over smart HTTP at ``<base>/<namespace>/<name>.git`` (read-only, anonymous) through
``git http-backend``, so ``git clone --branch TAG <http_url_to_repo>`` works from any build shell.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import threading
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from sandbox.faults import Fault, Faults
from sandbox.gitlab import git
from sandbox.standin_http import DispatchingHandler, ThreadedStandin

API_PREFIX = "/api/v4"
_MAX_PER_PAGE = 100
_DEFAULT_PER_PAGE = 20
_REQUEST_LOG_SIZE = 10_000  # `make run` serves for days: keep only the recent requests tests count


@dataclass(frozen=True)
class Project:
    id: int
    path_with_namespace: str
    bare: Path

    @property
    def namespace(self) -> str:
        return self.path_with_namespace.rsplit("/", 1)[0]

    @property
    def path(self) -> str:
        return self.path_with_namespace.rsplit("/", 1)[1]


def _fault_response(fault: Fault) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, GitLab-shaped JSON body and headers of an injected answer."""
    try:
        phrase = HTTPStatus(fault.status).phrase
    except ValueError:
        phrase = "Error"
    return fault.status, {"message": f"{fault.status} {phrase}"}, fault.headers()


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.status = status
        self.body = body


def _not_found(what: str) -> ApiError:
    return ApiError(404, {"message": f"404 {what} Not Found"})


def _bad_request(message: str) -> ApiError:
    return ApiError(400, {"message": message})


class GitLabStandin(ThreadedStandin):
    """Serve GitLab's v4 API for the bare repositories under ``root``.

    ``start()`` binds 127.0.0.1 (port 0 picks a free one) in a background thread and returns the base URL to
    hand to ``gitlab.Gitlab(url, private_token=token)``.
    """

    def __init__(self, root: Path | str, token: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = token
        self._host = host
        self._port = port
        self.lock = threading.RLock()  # serialises ref writes and project registration
        self._projects: dict[int, Project] = {}
        self.faults = Faults()
        self._requests: deque[tuple[str, str]] = deque(maxlen=_REQUEST_LOG_SIZE)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._scan()

    # -- lifecycle (ThreadedStandin) ---------------------------------------------------------------------

    thread_name = "gitlab-standin"

    def handler_class(self):
        return _Handler

    # -- fault injection and request log -----------------------------------------------------------------

    def inject_fault(self, pattern: str, status: int = 500, count: int = 1, method: str | None = None, **kw):
        """See ``Faults.inject``. ``after=False`` answers before anything happens (before auth, too);
        ``after=True`` serves the request for real (a tag is really created) and then loses the answer."""
        self.faults.inject(pattern, status, count, method, **kw)

    def clear_faults(self) -> None:
        self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        return self.faults.take(method, path)

    # -- projects ----------------------------------------------------------------------------------------

    def _scan(self) -> None:
        with self.lock:
            for bare in sorted(self.root.glob("**/*.git")):
                if (bare / "HEAD").is_file():
                    self._register(bare)

    def _register(self, bare: Path) -> Project:
        rel = bare.relative_to(self.root).as_posix()[: -len(".git")]
        try:
            pid = int(git.run_git(bare, "config", "--get", "standin.projectid").strip())
        except git.GitError:
            pid = max(self._projects, default=0) + 1
            git.run_git(bare, "config", "standin.projectid", str(pid))
        project = Project(pid, rel, bare)
        self._projects[pid] = project
        return project

    def create_project(
        self, path_with_namespace: str, source: Path | str, default_branch: str = "main"
    ) -> Project:
        """Create ``namespace/name`` whose ``default_branch`` holds one commit with ``source``'s files."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+", path_with_namespace):
            raise ValueError(f"invalid project path {path_with_namespace!r}")
        with self.lock:
            bare = self.root / f"{path_with_namespace}.git"
            git.init_bare_from_dir(bare, Path(source), default_branch)
            return self._register(bare)

    def sync_project(self, path_with_namespace: str, source: Path | str, message: str = "Update") -> Project:
        """Create ``namespace/name`` from ``source``, or commit ``source``'s files on its default branch
        when they changed (a sandbox that keeps its GitLab between runs serves the current sources)."""
        project = self.find_project(path_with_namespace)
        if project is None:
            return self.create_project(path_with_namespace, source)
        with self.lock:
            branch = git.run_git(project.bare, "symbolic-ref", "--short", "HEAD").strip()
            git.commit_dir(project.bare, Path(source), branch, message)
        return project

    def create_branch(self, project: Project, name: str, ref: str) -> None:
        sha = git.resolve_commit(project.bare, ref)
        if sha is None:
            raise ValueError(f"unknown ref {ref!r}")
        with self.lock:
            git.create_branch(project.bare, name, sha)

    def find_project(self, ident: str) -> Project | None:
        if ident.isdigit():
            return self._projects.get(int(ident))
        return next((p for p in self._projects.values() if p.path_with_namespace == ident), None)

    # -- JSON shapes -------------------------------------------------------------------------------------

    def project_json(self, p: Project) -> dict[str, Any]:
        web_url = f"{self.url}/{p.path_with_namespace}"
        try:
            head = git.run_git(p.bare, "symbolic-ref", "--short", "HEAD").strip()
        except git.GitError:
            head = "main"
        return {
            "id": p.id,
            "name": p.path,
            "path": p.path,
            "path_with_namespace": p.path_with_namespace,
            "name_with_namespace": p.path_with_namespace.replace("/", " / "),
            "description": "",
            "default_branch": head,
            "web_url": web_url,
            "http_url_to_repo": f"{web_url}.git",
            "ssh_url_to_repo": f"git@127.0.0.1:{p.path_with_namespace}.git",
            "visibility": "public",
            "archived": False,
            "namespace": {
                "id": 1,
                "name": p.namespace,
                "path": p.namespace,
                "kind": "group",
                "full_path": p.namespace,
            },
        }

    def commit_json(self, p: Project, c: git.Commit) -> dict[str, Any]:
        return {
            "id": c.sha,
            "short_id": c.sha[:8],
            "title": c.title,
            "message": c.message,
            "author_name": c.author_name,
            "author_email": c.author_email,
            "authored_date": c.authored_date,
            "committer_name": c.committer_name,
            "committer_email": c.committer_email,
            "committed_date": c.committed_date,
            "created_at": c.committed_date,
            "parent_ids": c.parent_ids,
            "web_url": f"{self.url}/{p.path_with_namespace}/-/commit/{c.sha}",
        }

    def branch_json(self, p: Project, name: str, sha: str, default: str) -> dict[str, Any]:
        return {
            "name": name,
            "merged": False,
            "protected": name == default,
            "default": name == default,
            "developers_can_push": False,
            "developers_can_merge": False,
            "can_push": True,
            "web_url": f"{self.url}/{p.path_with_namespace}/-/tree/{quote(name, safe='')}",
            "commit": self.commit_json(p, git.commit_info(p.bare, sha)),
        }

    def tag_json(self, p: Project, t: git.Tag) -> dict[str, Any]:
        commit = self.commit_json(p, git.commit_info(p.bare, t.commit_sha))
        return {
            "name": t.name,
            "message": t.message,
            "target": t.target,
            "commit": commit,
            "release": None,
            "protected": False,
            "created_at": commit["committed_date"] if t.message else None,
        }


def _version_key(name: str) -> tuple[Any, ...]:
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"[.\-+]", name.lstrip("v"))
    )


class _Handler(DispatchingHandler):
    standin: GitLabStandin
    protocol_version = "HTTP/1.1"
    server_version = "gitlab-standin"
    _lost: Fault | None = None  # an after=True fault: the real answer is replaced by this one

    # -- plumbing ----------------------------------------------------------------------------------------

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        if self._lost is not None:
            # The work is done; only the answer is swapped, as when a proxy or the network drops it.
            status, payload, headers = _fault_response(self._lost)
            body, content_type, self._lost = json.dumps(payload).encode(), "application/json", None
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = b"" if status == HTTPStatus.NO_CONTENT else json.dumps(payload).encode()
        self._send(status, body, "application/json", headers)

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        body = self._read_body()
        self._lost = None  # keep-alive: the handler serves several requests
        if split.path == f"{API_PREFIX}/_standin/faults":
            self._fault_admin(method, body)
            return
        self.standin.log_request(method, self.path)
        fault = self.standin.take_fault(method, self.path)
        if fault is not None and not fault.after:
            status, payload, headers = _fault_response(fault)
            self._send_json(status, payload, headers)
            return
        self._lost = fault
        if not split.path.startswith(API_PREFIX + "/"):
            if ".git/" in split.path and method in ("GET", "POST"):
                self._git_http_backend(method, split.path, split.query, body)
            else:
                self._send_json(404, {"error": "404 Not Found"})
            return
        if self._token() != self.standin.token:
            self._send_json(401, {"message": "401 Unauthorized"})
            return
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        if body and "json" in self.headers.get("Content-Type", ""):
            try:
                query.update(json.loads(body))
            except ValueError:
                self._send_json(400, {"message": "400 Bad request - JSON body invalid"})
                return
        elif body:
            query.update({k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()})
        # Split before unquoting: encoded slashes (%2F) belong to project paths and ref names.
        segments = [unquote(s) for s in split.path[len(API_PREFIX) + 1 :].split("/")]
        try:
            self._route(method, segments, query)
        except ApiError as exc:
            self._send_json(exc.status, exc.body)
        except git.GitError as exc:
            self._send_json(500, {"message": f"500 Internal Server Error: {exc}"})

    def _fault_admin(self, method: str, body: bytes) -> None:
        """``POST {"pattern", "status", "count", "method", "after", "retry_after"}`` / ``DELETE``: for
        `make run`, where the stand-in runs in another process."""
        if self._token() != self.standin.token:
            self._send_json(401, {"message": "401 Unauthorized"})
        elif method == "DELETE":
            self.standin.clear_faults()
            self._send_json(204, None)
        elif method == "POST":
            try:
                spec = json.loads(body or b"{}")
                self.standin.inject_fault(
                    str(spec["pattern"]),
                    int(spec.get("status", 500)),
                    int(spec.get("count", 1)),
                    spec.get("method"),
                    after=bool(spec.get("after", False)),
                    retry_after=spec.get("retry_after"),
                )
            except (ValueError, KeyError, TypeError, re.error) as exc:
                self._send_json(400, {"message": f"400 Bad request - {exc}"})
                return
            self._send_json(201, {"message": "fault injected"})
        else:
            self._send_json(405, {"message": "405 Method Not Allowed"})

    def _token(self) -> str | None:
        if token := self.headers.get("PRIVATE-TOKEN"):
            return token
        auth = self.headers.get("Authorization", "")
        return auth[len("Bearer ") :] if auth.startswith("Bearer ") else None

    def _paginate(self, items: list[Any], query: dict[str, Any]) -> None:
        try:
            per_page = min(max(int(query.get("per_page", _DEFAULT_PER_PAGE)), 1), _MAX_PER_PAGE)
            page = max(int(query.get("page", 1)), 1)
        except ValueError as exc:
            raise _bad_request("400 Bad request - page or per_page invalid") from exc
        total_pages = max(math.ceil(len(items) / per_page), 1)
        headers = {
            "X-Page": str(page),
            "X-Per-Page": str(per_page),
            "X-Total": str(len(items)),
            "X-Total-Pages": str(total_pages),
            "X-Next-Page": str(page + 1) if page < total_pages else "",
            "X-Prev-Page": str(page - 1) if page > 1 else "",
        }
        base = f"{self.standin.url}{urlsplit(self.path).path}"
        keep = {k: v for k, v in query.items() if k not in ("page", "per_page") and isinstance(v, str)}

        def link(target: int, rel: str) -> str:
            return f'<{base}?{urlencode({**keep, "page": target, "per_page": per_page})}>; rel="{rel}"'

        links = []
        if page < total_pages:
            links.append(link(page + 1, "next"))
        if page > 1:
            links.append(link(page - 1, "prev"))
        links += [link(1, "first"), link(total_pages, "last")]
        headers["Link"] = ", ".join(links)
        start = (page - 1) * per_page
        self._send_json(200, items[start : start + per_page], headers)

    # -- routes ------------------------------------------------------------------------------------------

    def _route(self, method: str, seg: list[str], query: dict[str, Any]) -> None:
        st = self.standin
        if method == "GET" and seg == ["version"]:
            self._send_json(200, {"version": "17.0.0-standin", "revision": "standin"})
            return
        if method == "GET" and seg == ["user"]:
            self._send_json(
                200, {"id": 1, "username": "root", "name": "Sandbox Administrator", "state": "active"}
            )
            return
        if len(seg) < 2 or seg[0] != "projects":
            raise ApiError(404, {"error": "404 Not Found"})
        project = st.find_project(seg[1])
        if project is None:
            raise _not_found("Project")
        rest = seg[2:]
        if not rest and method == "GET":
            self._send_json(200, st.project_json(project))
        elif rest[:2] == ["repository", "branches"]:
            self._branches(method, project, rest[2:], query)
        elif rest[:2] == ["repository", "tags"]:
            self._tags(method, project, rest[2:], query)
        elif rest[:2] == ["repository", "commits"]:
            self._commits(method, project, rest[2:], query)
        else:
            raise ApiError(404, {"error": "404 Not Found"})

    def _default_branch(self, project: Project) -> str:
        return str(self.standin.project_json(project)["default_branch"])

    def _branches(self, method: str, p: Project, rest: list[str], query: dict[str, Any]) -> None:
        st = self.standin
        default = self._default_branch(p)
        name = "/".join(rest)  # unencoded slashes in a branch name still address one branch
        if method == "GET" and not rest:
            search = str(query.get("search", ""))
            heads = sorted((n, s) for n, s in git.branches(p.bare).items() if search in n)
            self._paginate([st.branch_json(p, n, s, default) for n, s in heads], query)
        elif method == "GET":
            sha = git.branches(p.bare).get(name)
            if sha is None:
                raise _not_found("Branch")
            self._send_json(200, st.branch_json(p, name, sha, default))
        elif method == "POST" and not rest:
            branch, ref = str(query.get("branch", "")), str(query.get("ref", ""))
            if not branch:
                raise ApiError(400, {"error": "branch is missing"})
            if not ref:
                raise ApiError(400, {"error": "ref is missing"})
            if not git.valid_ref_name(f"refs/heads/{branch}"):
                raise _bad_request("Branch name is invalid")
            with st.lock:
                if branch in git.branches(p.bare):
                    raise _bad_request("Branch already exists")
                sha = git.resolve_commit(p.bare, ref)
                if sha is None:
                    raise _bad_request(f"Invalid reference name: {ref}")
                git.create_branch(p.bare, branch, sha)
            self._send_json(201, st.branch_json(p, branch, sha, default))
        elif method == "DELETE" and rest:
            with st.lock:
                if name not in git.branches(p.bare):
                    raise _not_found("Branch")
                git.delete_branch(p.bare, name)
            self._send_json(204, None)
        else:
            raise ApiError(405, {"message": "405 Method Not Allowed"})

    def _tags(self, method: str, p: Project, rest: list[str], query: dict[str, Any]) -> None:
        st = self.standin
        name = "/".join(rest)
        if method == "GET" and not rest:
            self._paginate([st.tag_json(p, t) for t in self._sorted_tags(p, query)], query)
        elif method == "GET":
            tag = next((t for t in git.tags(p.bare) if t.name == name), None)
            if tag is None:
                raise _not_found("Tag")
            self._send_json(200, st.tag_json(p, tag))
        elif method == "POST" and not rest:
            self._create_tag(p, query)
        elif method == "DELETE" and rest:
            with st.lock:
                if all(t.name != name for t in git.tags(p.bare)):
                    raise _not_found("Tag")
                git.delete_tag(p.bare, name)
            self._send_json(204, None)
        else:
            raise ApiError(405, {"message": "405 Method Not Allowed"})

    def _sorted_tags(self, p: Project, query: dict[str, Any]) -> list[git.Tag]:
        search = str(query.get("search", ""))
        found = [t for t in git.tags(p.bare) if search in t.name]
        order_by = query.get("order_by", "updated")
        if order_by == "name":
            found.sort(key=lambda t: t.name)
        elif order_by == "version":
            found.sort(key=lambda t: _version_key(t.name))
        else:
            dates = {t.name: git.commit_info(p.bare, t.commit_sha).committed_date for t in found}
            found.sort(key=lambda t: (dates[t.name], t.name))
        if query.get("sort", "desc") == "desc":
            found.reverse()
        return found

    def _create_tag(self, p: Project, query: dict[str, Any]) -> None:
        # Every failure is a 400, as lib/api/tags.rb reports them (not the 409 the service uses internally).
        tag_name, ref = query.get("tag_name"), query.get("ref")
        if tag_name is None:
            raise ApiError(400, {"error": "tag_name is missing"})
        if ref is None:
            raise ApiError(400, {"error": "ref is missing"})
        tag_name, ref = str(tag_name), str(ref)
        message = str(query.get("message") or "").strip()
        if not tag_name or not git.valid_ref_name(f"refs/tags/{tag_name}") or tag_name.startswith("-"):
            raise _bad_request("Tag name invalid")
        if not ref:
            raise _bad_request("Target is empty")
        with self.standin.lock:
            if any(t.name == tag_name for t in git.tags(p.bare)):
                raise _bad_request(f"Tag {tag_name} already exists")
            sha = git.resolve_commit(p.bare, ref)
            if sha is None:
                raise _bad_request(f"Target {ref} is invalid")
            git.create_tag(p.bare, tag_name, sha, message or None)
            tag = next(t for t in git.tags(p.bare) if t.name == tag_name)
        self._send_json(201, self.standin.tag_json(p, tag))

    def _commits(self, method: str, p: Project, rest: list[str], query: dict[str, Any]) -> None:
        if method != "GET":
            raise ApiError(405, {"message": "405 Method Not Allowed"})
        if not rest:
            ref = str(query.get("ref_name") or self._default_branch(p))
            if git.resolve_commit(p.bare, ref) is None:
                raise _not_found("Commit")
            commits = git.log(p.bare, ref, max_count=10_000)
            self._paginate([self.standin.commit_json(p, c) for c in commits], query)
            return
        sha = git.resolve_commit(p.bare, "/".join(rest))
        if sha is None:
            raise _not_found("Commit")
        payload = self.standin.commit_json(p, git.commit_info(p.bare, sha))
        payload.update(
            {"stats": {"additions": 0, "deletions": 0, "total": 0}, "status": None, "last_pipeline": None}
        )
        self._send_json(200, payload)

    # -- git smart HTTP ----------------------------------------------------------------------------------

    def _git_http_backend(self, method: str, path: str, query: str, body: bytes) -> None:
        # Read-only: git http-backend only enables receive-pack for authenticated users, and we set none.
        env = git.git_env()
        env.update(
            {
                "GIT_PROJECT_ROOT": str(self.standin.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": unquote(path),
                "QUERY_STRING": query,
                "REQUEST_METHOD": method,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": self.client_address[0],
                "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            }
        )
        proc = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env, check=False)
        raw_headers, sep, payload = proc.stdout.partition(b"\r\n\r\n")
        if not sep:
            raw_headers, _, payload = proc.stdout.partition(b"\n\n")
        status = 200
        headers: dict[str, str] = {}
        for line in raw_headers.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers[name.strip()] = value.strip()
        content_type = headers.pop("Content-Type", "application/octet-stream")
        self._send(status, payload, content_type, headers)
