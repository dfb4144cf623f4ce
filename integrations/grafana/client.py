"""Grafana's HTTP API, as the portal writes it: a folder per project, one Prometheus data source, a
dashboard per environment keyed by uid, and release annotations.

Authentication is a service-account token (``Authorization: Bearer glsa_…``, role Editor). Errors are
the typed ones of ``integrations.errors``: 401/403 ``Unauthorized``, 404 ``NotFound``, 409 and 412
``Conflict`` (Grafana's ``status`` word, e.g. ``version-mismatch``, in ``details["status"]``), 400
``Invalid``, 5xx/429 ``ServerError`` (transient), no answer ``transport_error``. Only the status code is
relied on: Grafana's message texts changed between versions.

Saving is optimistic, as Grafana intends: the current version is read and sent back; a 412 (someone
saved in between, or a create raced another) is answered by reading again, a bounded number of times.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from integrations.errors import (
    Conflict,
    IntegrationError,
    Invalid,
    NotFound,
    ServerError,
    Unauthorized,
    parse_retry_after,
)
from integrations.http import make_session, transport_error

SYSTEM = "Grafana"
DEFAULT_TIMEOUT = (5.0, 15.0)
SAVE_ATTEMPTS = 3  # reads-and-saves after a 412 before giving up


def error_from_response(response: requests.Response, what: str) -> IntegrationError:
    code = response.status_code
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    word = str(body.get("status") or "")
    cause = str(body.get("message") or response.reason or f"HTTP {code}")
    kwargs: dict[str, Any] = {"cause": cause, "status": code, "details": {"status": word}}
    if code in (401, 403):
        return Unauthorized(f"Grafana refused the service-account token ({code}) for {what}", **kwargs)
    if code == 404:
        return NotFound(f"{what} not found in Grafana", **kwargs)
    if code in (409, 412):
        return Conflict(f"Grafana refused {what}: it conflicts with what Grafana has", **kwargs)
    if code == 429 or code >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return ServerError(f"Grafana answered {code} for {what}", retry_after=retry_after, **kwargs)
    if code == 400:
        return Invalid(f"Grafana rejected {what}", **kwargs)
    return IntegrationError(f"Grafana answered {code} for {what}", **kwargs)


class GrafanaClient:
    def __init__(
        self, base_url: str, token: str, *, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT
    ) -> None:
        if not base_url:
            raise Invalid("Grafana is not configured (no GRAFANA_URL)")
        self.base_url = base_url.rstrip("/")
        self._session = make_session(timeout)
        self._session.headers["Authorization"] = f"Bearer {token}"
        self._session.headers["Accept"] = "application/json"

    @classmethod
    def from_settings(cls) -> GrafanaClient | None:
        """The configured client, or None when dashboards are off (no GRAFANA_URL)."""
        from django.conf import settings

        url = getattr(settings, "GRAFANA_URL", "")
        return cls(url, getattr(settings, "GRAFANA_TOKEN", "")) if url else None

    # -- plumbing ------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, f"{self.base_url}{path}", **kwargs)
        except requests.exceptions.RequestException as exc:
            raise transport_error(exc, SYSTEM) from exc

    def _json(self, method: str, path: str, what: str, *, ok: int = 200, **kwargs: Any) -> Any:
        response = self._call(method, path, what, **kwargs)
        if response.status_code != ok:
            raise error_from_response(response, what)
        try:
            return response.json()
        except ValueError:
            raise ServerError(f"Grafana sent no JSON for {what}", cause=response.text[:200]) from None

    def _get_or_none(self, path: str, what: str) -> Any:
        try:
            return self._json("GET", path, what)
        except NotFound:
            return None

    # -- API -----------------------------------------------------------------------------------------

    def _delete(self, path: str, what: str) -> bool:
        try:
            self._json("DELETE", path, what)
        except NotFound:
            return False
        return True

    def health(self) -> dict:
        return self._json("GET", "/api/health", "the health check")

    def folder_get(self, uid: str) -> dict | None:
        return self._get_or_none(f"/api/folders/{quote(uid, safe='')}", f"folder {uid}")

    def folder_ensure(self, uid: str, title: str) -> dict:
        """The folder ``uid``, created with ``title`` unless it exists. A 409 on create is another
        worker's create winning the race (read it back), or the title taken by another folder."""
        what = f"folder {uid}"
        folder = self.folder_get(uid)
        if folder is not None:
            return folder
        try:
            return self._json("POST", "/api/folders", what, json={"uid": uid, "title": title})
        except Conflict:
            folder = self.folder_get(uid)
            if folder is None:
                raise Conflict(
                    f"Grafana has another folder titled {title!r}; rename it or give it the uid {uid}",
                    status=409,
                ) from None
            return folder

    def folder_delete(self, uid: str) -> bool:
        """Delete the folder and its dashboards; False when it did not exist."""
        return self._delete(f"/api/folders/{quote(uid, safe='')}", f"folder {uid}")

    def datasource_get(self, uid: str) -> dict | None:
        return self._get_or_none(f"/api/datasources/uid/{quote(uid, safe='')}", f"data source {uid}")

    def datasource_ensure(
        self,
        uid: str,
        *,
        name: str,
        type: str,
        url: str,
        json_data: dict | None = None,  # noqa: A002
    ) -> dict:
        """The data source ``uid``, created (proxy access) unless it exists. An existing one is left as
        it is: Grafana's admins may have tuned it."""
        what = f"data source {uid}"
        found = self.datasource_get(uid)
        if found is not None:
            return found
        body = {
            "uid": uid,
            "name": name,
            "type": type,
            "url": url,
            "access": "proxy",
            "isDefault": False,
            "jsonData": json_data or {},
        }
        try:
            return self._json("POST", "/api/datasources", what, json=body)["datasource"]
        except Conflict:
            found = self.datasource_get(uid)
            if found is None:
                raise Conflict(
                    f"Grafana has another data source named {name!r}; set GRAFANA_DATASOURCE_UID to its uid",
                    status=409,
                ) from None
            return found

    def dashboard_get(self, uid: str) -> dict | None:
        """``{"dashboard": {...}, "meta": {...}}``, or None when there is none with this uid."""
        return self._get_or_none(f"/api/dashboards/uid/{quote(uid, safe='')}", f"dashboard {uid}")

    def dashboard_save(self, dashboard: dict, *, folder_uid: str, message: str = "") -> dict:
        """Create or update the dashboard ``dashboard["uid"]`` in ``folder_uid``; returns Grafana's answer
        (``id, uid, url, status, version, slug``). The current version is sent back (optimistic
        locking); a 412 re-reads and tries again, up to SAVE_ATTEMPTS times."""
        uid = dashboard["uid"]
        what = f"dashboard {uid}"
        last = Conflict(f"Grafana refused {what}", status=412)
        for _attempt in range(SAVE_ATTEMPTS):
            current = self.dashboard_get(uid)
            model = {
                **dashboard,
                "id": current["dashboard"].get("id") if current else None,
                "version": current["meta"]["version"] if current else 0,
            }
            body = {"dashboard": model, "folderUid": folder_uid, "message": message[:500], "overwrite": False}
            try:
                return self._json("POST", "/api/dashboards/db", what, json=body)
            except Conflict as exc:
                if exc.status != 412 or exc.details.get("status") not in ("version-mismatch", ""):
                    raise
                last = exc  # saved by someone else in between: read the new version and save again
        raise last

    def dashboard_delete(self, uid: str) -> bool:
        """False when there was no such dashboard."""
        return self._delete(f"/api/dashboards/uid/{quote(uid, safe='')}", f"dashboard {uid}")

    def search(self, *, tags: list[str] | None = None, folder_uids: list[str] | None = None) -> list[dict]:
        params: list[tuple[str, str]] = [("type", "dash-db")]
        params += [("tag", tag) for tag in tags or []]
        if folder_uids:
            params.append(("folderUIDs", ",".join(folder_uids)))
        return self._json("GET", "/api/search", "the dashboard search", params=params)

    def annotation_create(self, dashboard_uid: str, *, text: str, tags: list[str], time_ms: int) -> int:
        """Mark ``time_ms`` on the dashboard; returns the annotation's id."""
        body = {"dashboardUID": dashboard_uid, "time": int(time_ms), "tags": list(tags), "text": text}
        return int(
            self._json("POST", "/api/annotations", f"an annotation on {dashboard_uid}", json=body)["id"]
        )

    def annotations(self, dashboard_uid: str, *, limit: int = 100) -> list[dict]:
        params = {"dashboardUID": dashboard_uid, "limit": limit}
        return self._json("GET", "/api/annotations", f"the annotations of {dashboard_uid}", params=params)
