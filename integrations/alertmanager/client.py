"""Alertmanager's v2 API as the portal uses it: silences (create, list, expire) and alerts.

The contract is Alertmanager's ``api/v2/openapi.yaml``: a ``postableSilence`` is ``matchers`` (each
``name``, ``value``, ``isRegex``, optional ``isEqual``), ``startsAt``, ``endsAt``, ``createdBy`` and
``comment`` (all required) and answers ``{"silenceID": ...}``; ``GET /silences`` answers gettable silences
(plus ``id``, ``status.state`` expired|active|pending, ``updatedAt``); ``DELETE /silence/{id}`` expires one.
Errors are the typed ones of ``integrations.errors``; Alertmanager's error bodies are plain strings.
``AlertmanagerClient.from_settings`` returns None when no ``ALERTMANAGER_URL`` is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from integrations.errors import IntegrationError, Invalid, NotFound, ServerError, Unauthorized
from integrations.http import make_session, transport_error

SYSTEM = "Alertmanager"
DEFAULT_TIMEOUT = (3.0, 10.0)


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def as_json(self) -> dict:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("Alertmanager needs timezone-aware times")
    return moment.isoformat()


class AlertmanagerClient:
    def __init__(
        self, base_url: str, *, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, token: str = ""
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = make_session(timeout)
        if token:  # an authenticating proxy in front of Alertmanager (it has no auth of its own)
            self._session.headers["Authorization"] = f"Bearer {token}"

    @classmethod
    def from_settings(cls) -> AlertmanagerClient | None:
        from django.conf import settings

        url = getattr(settings, "ALERTMANAGER_URL", "")
        return cls(url, token=getattr(settings, "ALERTMANAGER_TOKEN", "")) if url else None

    # --- silences --------------------------------------------------------------------------------

    def silence_create(
        self,
        *,
        matchers: list[Matcher],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
    ) -> str:
        """Create a silence; returns its id."""
        body = {
            "matchers": [m.as_json() for m in matchers],
            "startsAt": _timestamp(starts_at),
            "endsAt": _timestamp(ends_at),
            "createdBy": created_by,
            "comment": comment,
        }
        answer = self._json("POST", "/api/v2/silences", "the silence", json=body)
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not silence_id:
            raise ServerError(f"{SYSTEM} created a silence without answering its id", cause=str(answer)[:200])
        return str(silence_id)

    def silences(self, *, filters: list[str] | None = None) -> list[dict]:
        """Gettable silences, optionally filtered by matcher strings such as ``project="go-hello"``."""
        params = [("filter", f) for f in filters or []]
        answer = self._json("GET", "/api/v2/silences", "the silences", params=params)
        if not isinstance(answer, list):
            raise ServerError(f"{SYSTEM} answered the silences with no list", cause=str(answer)[:200])
        return answer

    def silence(self, silence_id: str) -> dict:
        return self._json("GET", f"/api/v2/silence/{silence_id}", f"silence {silence_id}")

    def silence_expire(self, silence_id: str) -> None:
        response = self._send("DELETE", f"/api/v2/silence/{silence_id}")
        if response.status_code != 200:
            raise error_from_response(response, f"silence {silence_id}")

    # --- alerts ----------------------------------------------------------------------------------

    def alerts(self, *, filters: list[str] | None = None, **flags: bool) -> list[dict]:
        """Gettable alerts; ``flags`` are the query flags active, silenced, inhibited, unprocessed."""
        params: list[tuple[str, str]] = [("filter", f) for f in filters or []]
        params += [(name, "true" if value else "false") for name, value in flags.items()]
        return self._json("GET", "/api/v2/alerts", "the alerts", params=params)

    def alerts_post(self, alerts: list[dict]) -> None:
        """Post alerts as Prometheus does (``labels``, ``annotations``, ``startsAt``, ``endsAt``,
        ``generatorURL``); the tests and the sandbox use it to fire alerts without a rule."""
        response = self._send("POST", "/api/v2/alerts", json=alerts)
        if response.status_code != 200:
            raise error_from_response(response, "the alerts")

    # --- transport -------------------------------------------------------------------------------

    def ready(self) -> bool:
        try:
            return self._session.get(f"{self.base_url}/-/ready").status_code == 200
        except requests.exceptions.RequestException:
            return False

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self._session.request(method, f"{self.base_url}{path}", **kwargs)
        except requests.exceptions.RequestException as exc:
            raise transport_error(exc, SYSTEM) from exc

    def _json(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        if response.status_code != 200:
            raise error_from_response(response, what)
        try:
            return response.json()
        except ValueError as exc:
            raise ServerError(f"{SYSTEM} answered {what} with no JSON", cause=response.text[:200]) from exc


def error_from_response(response: requests.Response, what: str) -> IntegrationError:
    code = response.status_code
    cause = (response.text or response.reason or f"HTTP {code}").strip()[:300]
    kwargs: dict[str, Any] = {"cause": cause, "status": code}
    if code in (401, 403):
        return Unauthorized(f"{SYSTEM} refused {what}", **kwargs)
    if code == 404:
        return NotFound(f"{SYSTEM} has no {what}", **kwargs)
    if code in (400, 422):
        return Invalid(f"{SYSTEM} rejected {what}", **kwargs)
    if code >= 500 or code == 429:
        return ServerError(f"{SYSTEM} could not answer {what}", **kwargs)
    return IntegrationError(f"{SYSTEM} answered {what} with HTTP {code}", **kwargs)
