"""Prometheus' HTTP API, as the portal reads it: instant and range queries, the targets, the reload.

Errors are the typed ones of ``integrations.errors``: a query Prometheus cannot parse (400 ``bad_data``)
is ``Invalid`` — the portal builds every query from fixed templates, so that is our bug, not the user's —
an overloaded or unreachable server is transient. ``PrometheusClient.from_settings`` returns None when
monitoring is off (no ``PROMETHEUS_URL``), so pages can say so instead of failing.
"""

from __future__ import annotations

from typing import Any

import requests

from integrations.errors import IntegrationError, Invalid, NotFound, ServerError, Unauthorized
from integrations.http import make_session, transport_error

SYSTEM = "Prometheus"
DEFAULT_TIMEOUT = (3.0, 10.0)  # a panel waits for at most this; Prometheus answers ours in milliseconds


class PrometheusClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        token: str = "",
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = make_session(timeout)
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_settings(cls) -> PrometheusClient | None:
        from django.conf import settings

        url = getattr(settings, "PROMETHEUS_URL", "")
        return cls(url, token=getattr(settings, "PROMETHEUS_TOKEN", "")) if url else None

    # --- queries ---------------------------------------------------------------------------------

    def query(self, expr: str, *, at: float | None = None) -> list[dict]:
        """An instant vector: ``[{"metric": {...}, "value": [ts, "1.5"]}]``."""
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        return self._api("POST", "/api/v1/query", data=params)["result"]

    def query_range(self, expr: str, *, start: float, end: float, step: float) -> list[dict]:
        """A range matrix: ``[{"metric": {...}, "values": [[ts, "1.5"], ...]}]``."""
        data = {"query": expr, "start": start, "end": end, "step": step}
        return self._api("POST", "/api/v1/query_range", data=data)["result"]

    def targets(self) -> list[dict]:
        """The active targets, each with ``labels``, ``scrapePool``, ``health`` and ``lastError``."""
        return self._api("GET", "/api/v1/targets", params={"state": "active"})["activeTargets"]

    def loaded_config(self) -> str:
        """The configuration Prometheus runs now (YAML text)."""
        return self._api("GET", "/api/v1/status/config")["yaml"]

    # --- lifecycle -------------------------------------------------------------------------------

    def ready(self) -> bool:
        try:
            return self._session.get(f"{self.base_url}/-/ready").status_code == 200
        except requests.exceptions.RequestException:
            return False

    def reload(self) -> None:
        """Ask Prometheus to re-read its configuration (needs ``--web.enable-lifecycle``)."""
        response = self._send("POST", "/-/reload")
        if response.status_code != 200:
            raise error_from_response(response, "the configuration reload")

    def last_reload_successful(self) -> bool:
        """What Prometheus says of its last reload (a failed one keeps the old configuration running).

        Read from the live gauge on its own /metrics: a query would answer from the TSDB, which holds
        the value of the last self-scrape (none yet on a fresh server, a stale one just after a reload)."""
        response = self._send("GET", "/metrics")
        if response.status_code != 200:
            raise error_from_response(response, "its own metrics")
        for line in response.text.splitlines():
            name, _, value = line.partition(" ")
            if name == "prometheus_config_last_reload_successful":
                return float(value) == 1.0
        raise ServerError(f"{SYSTEM} does not export prometheus_config_last_reload_successful")

    # --- transport -------------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, f"{self.base_url}{path}", **kwargs)
        except requests.exceptions.RequestException as exc:
            raise transport_error(exc, SYSTEM) from exc

    def _api(self, method: str, path: str, **kwargs: Any) -> dict:
        response = self._send(method, path, **kwargs)
        if response.status_code != 200:
            raise error_from_response(response, path)
        try:
            body = response.json()
        except ValueError as exc:
            raise ServerError(f"{SYSTEM} answered {path} with no JSON", cause=response.text[:200]) from exc
        if body.get("status") != "success":
            raise error_from_response(response, path)
        return body["data"]


def error_from_response(response: requests.Response, what: str) -> IntegrationError:
    code = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    error_type = str(body.get("errorType") or "")
    cause = str(body.get("error") or response.text[:200] or response.reason or f"HTTP {code}")
    kwargs: dict[str, Any] = {"cause": cause, "status": code, "details": {"errorType": error_type}}
    if code in (401, 403):
        return Unauthorized(f"{SYSTEM} refused {what}", **kwargs)
    if code == 404:
        return NotFound(f"{SYSTEM} has no {what}", **kwargs)
    if code in (400, 422) or error_type in ("bad_data", "execution"):
        return Invalid(f"{SYSTEM} rejected {what}", **kwargs)
    if code >= 500 or code == 429 or error_type in ("timeout", "canceled", "unavailable"):
        return ServerError(f"{SYSTEM} could not answer {what}", **kwargs)
    return IntegrationError(f"{SYSTEM} answered {what} with HTTP {code}", **kwargs)
