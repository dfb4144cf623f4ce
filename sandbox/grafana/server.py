"""Grafana stand-in: the part of Grafana's HTTP API the portal uses, written from Grafana's API
documentation (docs/sources/developers/http_api/{dashboard,folder,data_source,annotations}.md). Grafana
is AGPL: none of its code is used here, and Grafana is never run.

What it honours (state in memory; one organisation):
- ``Authorization: Bearer <token>``: the Editor token may read and write, the Viewer token only read
  (403 on writes); anything else is 401. ``GET /api/health`` needs no token.
- Folders: ``POST /api/folders`` (409 for a taken uid or title), ``GET /api/folders[/:uid]`` (404),
  ``DELETE /api/folders/:uid`` (its dashboards go with it).
- Data sources: ``POST /api/datasources`` (409 for a taken name or uid), ``GET /api/datasources/uid/:uid``
  and ``/name/:name`` (404).
- Dashboards keyed by uid with a version counter: ``POST /api/dashboards/db`` creates (version 1) or, with
  the current ``version`` or ``overwrite: true``, updates (version + 1); a stale version is 412
  ``version-mismatch``, another dashboard's title in the same folder 412 ``name-exists``; 400 for an empty
  title (``empty-name``), a uid longer than 40 characters or with other characters than
  ``[a-zA-Z0-9_-]``, an unknown ``folderUid``, a message over 500 or a tag over 50 characters.
  ``GET``/``DELETE /api/dashboards/uid/:uid`` (404 ``not-found``); ``GET /api/search``.
- Annotations: ``POST /api/annotations`` and ``GET /api/annotations?dashboardUID=…``.

Stricter than Grafana, on purpose (Grafana stores any panel JSON and shows the breakage only when drawn):
every panel must have a known ``type`` and a ``gridPos``; a panel or target ``datasource.uid`` must name a
data source that exists; a Prometheus target must have a ``refId`` and a non-empty ``expr``. A broken
dashboard generator fails the tests with 400 ``invalid-panel`` instead of drawing empty graphs.

Faults: ``set_outage(True)`` answers every call 500 until ``set_outage(False)``; ``inject_fault`` answers
the next matching calls with an error (sandbox.faults). ``POST/DELETE /api/_standin/outage`` and
``/api/_standin/faults`` do the same from another process (`make run`).
"""

from __future__ import annotations

import html
import itertools
import json
import re
import threading
import time
from collections import deque
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox.faults import Faults
from sandbox.standin_http import DispatchingHandler, ThreadedStandin

UID_MAX = 40
_UID = re.compile(r"[a-zA-Z0-9_-]+")
MESSAGE_MAX = 500
TAG_MAX = 50
PANEL_TYPES = frozenset(
    {
        "timeseries",
        "stat",
        "gauge",
        "bargauge",
        "table",
        "text",
        "row",
        "heatmap",
        "piechart",
        "logs",
        "barchart",
        "state-timeline",
    }
)
# Panels that need no data source.
_NO_DATA_PANELS = frozenset({"text", "row"})
# Grafana's own pseudo data sources (annotations, mixed panels), always present.
_BUILTIN_DATASOURCES = frozenset({"-- Grafana --", "grafana", "-- Mixed --", "-- Dashboard --"})
_REQUEST_LOG_SIZE = 10_000


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message}
        if code:
            self.body["status"] = code


def slugify(title: str) -> str:
    """Grafana-like URL slug: lowercase words joined by '-'."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "dashboard"


class GrafanaStandin(ThreadedStandin):
    """Serve the API on ``host:port`` (0 picks a free port) from a background thread."""

    def __init__(
        self,
        token: str,
        *,
        viewer_token: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
        state_file: Path | str | None = None,
    ) -> None:
        self.token = token
        self.roles = {token: "Editor"}
        if viewer_token:
            self.roles[viewer_token] = "Viewer"
        self._host, self._port = host, port
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}  # uid -> {"dashboard", "folderUid", "id", "version"}
        self.annotations: list[dict[str, Any]] = []
        self.faults = Faults()
        self.outage = False
        self._requests: deque[tuple[str, str]] = deque(maxlen=_REQUEST_LOG_SIZE)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # `make run` keeps the state across restarts, so dashboards the portal saved do not vanish.
        self.state_file = Path(state_file) if state_file else None
        self._load()

    # -- state on disk (optional) ------------------------------------------------------------------------

    @property
    def root(self) -> str:
        """Where the state lives (serve_until_interrupted prints it)."""
        return str(self.state_file) if self.state_file else "memory"

    def _load(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        state = json.loads(self.state_file.read_text())
        self.folders, self.datasources = state["folders"], state["datasources"]
        self.dashboards, self.annotations = state["dashboards"], state["annotations"]
        self._ids = itertools.count(int(state["next_id"]))

    def save(self) -> None:
        if self.state_file is None:
            return
        with self.lock:
            next_id = next(self._ids)
            self._ids = itertools.count(next_id)
            state = {
                "folders": self.folders,
                "datasources": self.datasources,
                "dashboards": self.dashboards,
                "annotations": self.annotations,
                "next_id": next_id,
            }
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            partial = self.state_file.with_suffix(".tmp")
            partial.write_text(json.dumps(state))
            partial.replace(self.state_file)

    # -- lifecycle (ThreadedStandin) ---------------------------------------------------------------------

    thread_name = "grafana-standin"

    def handler_class(self):
        return _Handler

    # -- faults and the request log ----------------------------------------------------------------------

    def set_outage(self, on: bool) -> None:
        """While on, every call (the health check too) answers 500, as a Grafana whose database is down."""
        self.outage = on

    def inject_fault(self, pattern: str, status: int = 500, count: int = 1, method: str | None = None, **kw):
        self.faults.inject(pattern, status, count, method, **kw)

    # -- folders -----------------------------------------------------------------------------------------

    def _folder_json(self, folder: dict[str, Any]) -> dict[str, Any]:
        return {
            **folder,
            "url": f"/dashboards/f/{folder['uid']}/{slugify(folder['title'])}",
            "hasAcl": False,
            "canSave": True,
            "canEdit": True,
            "canAdmin": True,
        }

    def folder_create(self, body: dict[str, Any]) -> dict[str, Any]:
        title = str(body.get("title") or "").strip()
        if not title:
            raise ApiError(400, "folder title cannot be empty")
        uid = body.get("uid") or f"f{next(self._ids):08d}"
        _check_uid(uid)
        with self.lock:
            if uid in self.folders or any(f["title"] == title for f in self.folders.values()):
                raise ApiError(409, "a folder with the same name or uid already exists")
            folder = {"id": next(self._ids), "uid": uid, "title": title, "version": 1}
            self.folders[uid] = folder
            return self._folder_json(folder)

    def folder_get(self, uid: str) -> dict[str, Any]:
        with self.lock:
            folder = self.folders.get(uid)
            if folder is None:
                raise ApiError(404, "folder not found", "not-found")
            return self._folder_json(folder)

    def folder_delete(self, uid: str) -> dict[str, Any]:
        with self.lock:
            folder = self.folders.pop(uid, None)
            if folder is None:
                raise ApiError(404, "folder not found", "not-found")
            for dash_uid in [u for u, d in self.dashboards.items() if d["folderUid"] == uid]:
                del self.dashboards[dash_uid]
            return {
                "title": folder["title"],
                "message": f"Folder {folder['title']} deleted",
                "id": folder["id"],
            }

    # -- data sources ------------------------------------------------------------------------------------

    def datasource_create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("name") or "").strip()
        kind = str(body.get("type") or "").strip()
        if not name or not kind:
            raise ApiError(400, "a data source needs a name and a type")
        uid = body.get("uid") or f"ds{next(self._ids):08d}"
        _check_uid(uid)
        with self.lock:
            if any(d["name"] == name for d in self.datasources.values()):
                raise ApiError(409, "data source with the same name already exists")
            if uid in self.datasources:
                raise ApiError(409, "data source with the same uid already exists")
            datasource = {
                "id": next(self._ids),
                "uid": uid,
                "orgId": 1,
                "name": name,
                "type": kind,
                "access": body.get("access") or "proxy",
                "url": body.get("url") or "",
                "isDefault": bool(body.get("isDefault")),
                "jsonData": body.get("jsonData") or {},
                "readOnly": False,
                "version": 1,
            }
            self.datasources[uid] = datasource
            return {
                "datasource": datasource,
                "id": datasource["id"],
                "message": "Datasource added",
                "name": name,
            }

    def datasource_get(self, *, uid: str | None = None, name: str | None = None) -> dict[str, Any]:
        with self.lock:
            found = (
                self.datasources.get(uid or "")
                if uid is not None
                else next((d for d in self.datasources.values() if d["name"] == name), None)
            )
            if found is None:
                raise ApiError(404, "Data source not found")
            return dict(found)

    # -- dashboards --------------------------------------------------------------------------------------

    def _check_panels(self, panels: Any) -> None:
        if not isinstance(panels, list):
            raise ApiError(400, "dashboard panels must be a list", "invalid-panel")
        for index, panel in enumerate(panels, 1):
            where = f"panel {index}"
            if not isinstance(panel, dict):
                raise ApiError(400, f"{where} is not an object", "invalid-panel")
            where = f"panel {index} ({panel.get('title') or 'untitled'})"
            kind = panel.get("type")
            if kind not in PANEL_TYPES:
                raise ApiError(400, f"{where}: unknown panel type {kind!r}", "invalid-panel")
            grid = panel.get("gridPos")
            if not isinstance(grid, dict) or not all(
                isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")
            ):
                raise ApiError(400, f"{where}: gridPos needs integer h, w, x and y", "invalid-panel")
            if kind == "row":
                self._check_panels(panel.get("panels") or [])
                continue
            if kind in _NO_DATA_PANELS:
                continue
            panel_source = self._datasource_uid(panel.get("datasource"), where)
            targets = panel.get("targets")
            if not isinstance(targets, list) or not targets:
                raise ApiError(400, f"{where}: no targets", "invalid-panel")
            for target in targets:
                if not isinstance(target, dict) or not str(target.get("refId") or "").strip():
                    raise ApiError(400, f"{where}: a target has no refId", "invalid-panel")
                ref = target["refId"]
                source = (
                    self._datasource_uid(target.get("datasource"), f"{where} target {ref}") or panel_source
                )
                if source is None:
                    raise ApiError(400, f"{where} target {ref}: no data source", "invalid-panel")
                if (
                    self.datasources[source]["type"] == "prometheus"
                    and not str(target.get("expr") or "").strip()
                ):
                    raise ApiError(400, f"{where} target {ref}: empty expr", "invalid-panel")

    def _datasource_uid(self, ref: Any, where: str) -> str | None:
        """The uid a panel's or target's ``datasource`` names (None when absent); 400 when unknown."""
        if ref is None:
            return None
        uid = ref.get("uid") if isinstance(ref, dict) else ref
        if uid in _BUILTIN_DATASOURCES:
            return None
        if not isinstance(uid, str) or uid not in self.datasources:
            raise ApiError(400, f"{where}: data source {uid!r} does not exist", "invalid-panel")
        return uid

    def dashboard_save(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("dashboard")
        if not isinstance(model, dict):
            raise ApiError(400, "Dashboard title cannot be empty", "empty-name")
        title = str(model.get("title") or "").strip()
        if not title:
            raise ApiError(400, "Dashboard title cannot be empty", "empty-name")
        message = body.get("message") or ""
        if len(str(message)) > MESSAGE_MAX:
            raise ApiError(400, f"message too long, max {MESSAGE_MAX} characters")
        tags = model.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ApiError(400, "dashboard tags must be a list of strings")
        if any(len(t) > TAG_MAX for t in tags):
            raise ApiError(400, f"dashboard tag too long, max {TAG_MAX} characters", "tag-too-long")
        uid = model.get("uid") or f"d{next(self._ids):08d}"
        _check_uid(uid)
        overwrite = bool(body.get("overwrite"))
        folder_uid = body.get("folderUid") or ""
        with self.lock:
            if folder_uid and folder_uid not in self.folders:
                raise ApiError(400, "folder not found", "folder-not-found")
            self._check_panels(model.get("panels") or [])
            existing = self.dashboards.get(uid)
            if existing is not None and not overwrite and model.get("version") != existing["version"]:
                raise ApiError(412, "The dashboard has been changed by someone else", "version-mismatch")
            namesake = next(
                (
                    u
                    for u, d in self.dashboards.items()
                    if u != uid and d["folderUid"] == folder_uid and d["dashboard"]["title"] == title
                ),
                None,
            )
            if namesake is not None:
                if not overwrite:
                    raise ApiError(
                        412, "A dashboard with the same name in the folder already exists", "name-exists"
                    )
                del self.dashboards[namesake]
            dash_id = existing["id"] if existing else next(self._ids)
            version = existing["version"] + 1 if existing else 1
            slug = slugify(title)
            stored = {**model, "id": dash_id, "uid": uid, "title": title, "version": version}
            self.dashboards[uid] = {
                "dashboard": stored,
                "folderUid": folder_uid,
                "id": dash_id,
                "version": version,
                "slug": slug,
                "message": message,
                "created": existing["created"] if existing else time.time(),
                "updated": time.time(),
            }
            return {
                "id": dash_id,
                "uid": uid,
                "url": f"/d/{uid}/{slug}",
                "status": "success",
                "version": version,
                "slug": slug,
                "folderUid": folder_uid,
            }

    def dashboard_get(self, uid: str) -> dict[str, Any]:
        with self.lock:
            entry = self.dashboards.get(uid)
            if entry is None:
                raise ApiError(404, "Dashboard not found", "not-found")
            folder = self.folders.get(entry["folderUid"])
            return {
                "dashboard": json.loads(json.dumps(entry["dashboard"])),
                "meta": {
                    "type": "db",
                    "slug": entry["slug"],
                    "url": f"/d/{uid}/{entry['slug']}",
                    "version": entry["version"],
                    "folderUid": entry["folderUid"],
                    "folderTitle": folder["title"] if folder else "General",
                    "folderId": folder["id"] if folder else 0,
                    "canSave": True,
                    "provisioned": False,
                },
            }

    def dashboard_delete(self, uid: str) -> dict[str, Any]:
        with self.lock:
            entry = self.dashboards.pop(uid, None)
            if entry is None:
                raise ApiError(404, "Dashboard not found", "not-found")
            title = entry["dashboard"]["title"]
            return {"title": title, "message": f"Dashboard {title} deleted", "id": entry["id"]}

    def search(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        kind = (query.get("type") or ["dash-db"])[-1]
        tags = set(query.get("tag") or [])
        folders = {u for value in query.get("folderUIDs") or [] for u in value.split(",") if u}
        text = (query.get("query") or [""])[-1].lower()
        found: list[dict[str, Any]] = []
        with self.lock:
            if kind == "dash-folder":
                for folder in self.folders.values():
                    if text in folder["title"].lower():
                        url = self._folder_json(folder)["url"]
                        found.append(
                            {
                                "id": folder["id"],
                                "uid": folder["uid"],
                                "title": folder["title"],
                                "url": url,
                                "type": "dash-folder",
                                "tags": [],
                            }
                        )
                return found
            for uid, entry in self.dashboards.items():
                dash = entry["dashboard"]
                if not tags <= set(dash.get("tags") or []) or (folders and entry["folderUid"] not in folders):
                    continue
                if text not in dash["title"].lower():
                    continue
                folder = self.folders.get(entry["folderUid"])
                found.append(
                    {
                        "id": entry["id"],
                        "uid": uid,
                        "title": dash["title"],
                        "url": f"/d/{uid}/{entry['slug']}",
                        "slug": entry["slug"],
                        "type": "dash-db",
                        "tags": list(dash.get("tags") or []),
                        "isStarred": False,
                        "folderUid": entry["folderUid"],
                        "folderTitle": folder["title"] if folder else "",
                    }
                )
        return sorted(found, key=lambda d: d["title"])

    # -- annotations -------------------------------------------------------------------------------------

    def annotation_create(self, body: dict[str, Any]) -> dict[str, Any]:
        text = str(body.get("text") or "").strip()
        if not text:
            raise ApiError(400, "annotation text cannot be empty")
        dashboard_uid = body.get("dashboardUID") or ""
        now_ms = int(time.time() * 1000)
        try:
            at = int(body.get("time") or now_ms)
            end = int(body.get("timeEnd") or at)
        except (TypeError, ValueError):
            raise ApiError(400, "time and timeEnd are epoch milliseconds") from None
        tags = body.get("tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ApiError(400, "annotation tags must be a list of strings")
        with self.lock:
            entry = self.dashboards.get(dashboard_uid) if dashboard_uid else None
            if dashboard_uid and entry is None:
                raise ApiError(404, "Dashboard not found", "not-found")
            annotation = {
                "id": next(self._ids),
                "dashboardUID": dashboard_uid,
                "dashboardId": entry["id"] if entry else 0,
                "panelId": int(body.get("panelId") or 0),
                "time": at,
                "timeEnd": end,
                "text": text,
                "tags": tags,
                "created": now_ms,
            }
            self.annotations.append(annotation)
            return {"message": "Annotation added", "id": annotation["id"]}

    def annotations_find(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        dashboard_uid = (query.get("dashboardUID") or [""])[-1]
        tags = set(query.get("tags") or [])
        limit = int((query.get("limit") or ["100"])[-1] or 100)
        with self.lock:
            found = [
                dict(a)
                for a in self.annotations
                if (not dashboard_uid or a["dashboardUID"] == dashboard_uid) and tags <= set(a["tags"])
            ]
        return sorted(found, key=lambda a: -a["time"])[:limit]


def _check_uid(uid: Any) -> None:
    if not isinstance(uid, str) or len(uid) > UID_MAX:
        raise ApiError(400, f"uid too long, max {UID_MAX} characters")
    if not _UID.fullmatch(uid):
        raise ApiError(400, "uid contains illegal characters")


class _Handler(DispatchingHandler):
    standin: GrafanaStandin
    protocol_version = "HTTP/1.1"
    server_version = "grafana-standin"

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _role(self) -> str | None:
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        return self.standin.roles.get(token.strip()) if scheme.lower() == "bearer" else None

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = split.path.rstrip("/") or "/"
        if path.startswith("/api/_standin/"):
            self._admin(method, path, raw)
            return
        self.standin.log_request(method, self.path)
        if self.standin.outage:
            self._send_json(500, {"message": "Internal Server Error"})
            return
        fault = self.standin.faults.take(method, self.path)
        if fault is not None:
            try:
                phrase = HTTPStatus(fault.status).phrase
            except ValueError:
                phrase = "Error"
            self._send_json(fault.status, {"message": phrase}, fault.headers())
            return
        if path.startswith("/d/") and method == "GET":
            self._dashboard_page(path.split("/")[2])
            return
        if path == "/api/health" and method == "GET":
            self._send_json(200, {"database": "ok", "version": "stand-in"})
            return
        role = self._role()
        if role is None:
            self._send_json(
                401,
                {
                    "message": "Invalid API key",
                    "messageId": "api-key.invalid",
                    "statusCode": 401,
                    "traceID": "",
                },
            )
            return
        if method not in ("GET", "HEAD") and role == "Viewer":
            self._send_json(403, {"message": "Access denied", "status": "access-denied"})
            return
        body: dict[str, Any] = {}
        if method in ("POST", "PUT"):
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._send_json(400, {"message": "bad request data"})
                return
            if not isinstance(body, dict):
                self._send_json(400, {"message": "bad request data"})
                return
        query = parse_qs(split.query, keep_blank_values=True)
        segments = [unquote(s) for s in path.split("/")[2:]]  # after "/api"
        try:
            status, payload = self._route(method, segments, body, query)
        except ApiError as exc:
            self._send_json(exc.status, exc.body)
            return
        if method != "GET":
            self.standin.save()
        self._send_json(status, payload)

    def _dashboard_page(self, uid: str) -> None:
        """What the link on the environment page opens in `make run`: the dashboard's panels and their
        queries as plain HTML (the stand-in draws no graphs)."""
        with self.standin.lock:
            entry = self.standin.dashboards.get(uid)
            model = json.loads(json.dumps(entry["dashboard"])) if entry else None
            notes = [a for a in self.standin.annotations if a["dashboardUID"] == uid]
        if model is None:
            status, text = 404, "<h1>Dashboard not found</h1>"
        else:
            rows = "".join(
                f"<h2>{html.escape(str(p.get('title')))}</h2><ul>"
                + "".join(
                    f"<li><code>{html.escape(str(t.get('expr')))}</code> "
                    f"({html.escape(str(t.get('legendFormat') or ''))})</li>"
                    for t in p.get("targets") or []
                )
                + "</ul>"
                for p in model.get("panels") or []
            )
            marks = "".join(f"<li>{html.escape(a['text'])}</li>" for a in notes)
            status = 200
            text = (
                f"<h1>{html.escape(model['title'])} <small>version {model['version']}</small></h1>"
                f"<p>Grafana stand-in: panels and queries only.</p>{rows}<h2>Annotations</h2><ul>{marks}</ul>"
            )
        body = f"<!doctype html><meta charset=utf-8><title>Grafana stand-in</title>{text}".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(
        self, method: str, seg: list[str], body: dict[str, Any], query: dict[str, list[str]]
    ) -> tuple[int, Any]:
        s = self.standin
        match method, seg:
            case "POST", ["folders"]:
                return 200, s.folder_create(body)
            case "GET", ["folders"]:
                with s.lock:
                    return 200, [
                        {"id": f["id"], "uid": f["uid"], "title": f["title"]} for f in s.folders.values()
                    ]
            case "GET", ["folders", uid]:
                return 200, s.folder_get(uid)
            case "DELETE", ["folders", uid]:
                return 200, s.folder_delete(uid)
            case "POST", ["datasources"]:
                return 200, s.datasource_create(body)
            case "GET", ["datasources", "uid", uid]:
                return 200, s.datasource_get(uid=uid)
            case "GET", ["datasources", "name", name]:
                return 200, s.datasource_get(name=name)
            case "POST", ["dashboards", "db"]:
                return 200, s.dashboard_save(body)
            case "GET", ["dashboards", "uid", uid]:
                return 200, s.dashboard_get(uid)
            case "DELETE", ["dashboards", "uid", uid]:
                return 200, s.dashboard_delete(uid)
            case "GET", ["search"]:
                return 200, s.search(query)
            case "POST", ["annotations"]:
                return 200, s.annotation_create(body)
            case "GET", ["annotations"]:
                return 200, s.annotations_find(query)
        raise ApiError(404, "Not found")

    def _admin(self, method: str, path: str, raw: bytes) -> None:
        """The fault switch for another process (`make run`): ``POST /api/_standin/outage`` turns the
        outage on, ``DELETE`` off; ``POST /api/_standin/faults {"pattern", "status", "count", "method"}``
        injects faults, ``DELETE`` clears them. Editor token only."""
        if self._role() != "Editor":
            self._send_json(401, {"message": "Unauthorized"})
            return
        if path == "/api/_standin/outage" and method in ("POST", "DELETE"):
            self.standin.set_outage(method == "POST")
            self._send_json(200, {"outage": self.standin.outage})
            return
        if path == "/api/_standin/faults" and method == "DELETE":
            self.standin.faults.clear()
            self._send_json(200, {"message": "faults cleared"})
            return
        if path == "/api/_standin/faults" and method == "POST":
            try:
                spec = json.loads(raw or b"{}")
                self.standin.inject_fault(
                    str(spec["pattern"]),
                    int(spec.get("status", 500)),
                    int(spec.get("count", 1)),
                    spec.get("method"),
                )
            except (ValueError, KeyError, TypeError, re.error) as exc:
                self._send_json(400, {"message": f"bad fault: {exc}"})
                return
            self._send_json(201, {"message": "fault injected"})
            return
        self._send_json(404, {"message": "Not found"})
