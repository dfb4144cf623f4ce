"""Eureka's REST API as the portal uses it: read an app's instances, set and remove the status override.

The base URL is a Eureka *service URL*, as clients configure it (``http://eureka:8761/eureka/``: Spring
Cloud Netflix serves the REST operations under ``/eureka``; the standalone Netflix WAR under
``/eureka/v2``). Answers are asked for as JSON (``Accept: application/json``; without it Eureka answers
XML). App names are upper case in Eureka.

- ``GET  apps/{APP}`` lists the instances; 404 means Eureka knows no instance of the app (an empty list).
- ``PUT  apps/{APP}/{id}/status?value=OUT_OF_SERVICE`` sets the override. Unlike a de-registration, it
  survives the instance's heartbeats: the server keeps it as ``overriddenStatus``.
- ``DELETE apps/{APP}/{id}/status?value=UP`` removes the override; the instance's own status applies again.

Errors are the typed ones of ``integrations.errors``: 401/403 ``Unauthorized`` (a secured server wants
credentials), 404 ``NotFound`` (no such instance), 400 ``Invalid``, 5xx/429 ``ServerError``, no answer
``transport_error``. A server whose read-only response cache is on (the default) serves ``apps/{APP}`` up
to 30 s stale; the instance itself is read fresh, and the override takes effect at once either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from integrations.errors import (
    IntegrationError,
    Invalid,
    NotFound,
    ServerError,
    Unauthorized,
    parse_retry_after,
)
from integrations.http import make_session, transport_error

SYSTEM = "Eureka"
# A page waits for these calls: Eureka answers in milliseconds, so a slow one is a broken one.
DEFAULT_TIMEOUT = (3.0, 10.0)
OUT_OF_SERVICE = "OUT_OF_SERVICE"
UP = "UP"


def check_service_url(url: str) -> str:
    """The service URL normalised to end in "/"; ValueError for anything but http(s)://host[:port]/path
    without credentials (a credential in a URL would be stored and shown in clear)."""
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    if parts.username or parts.password:
        raise ValueError("contains a user name or password")
    if parts.query or parts.fragment:
        raise ValueError("has a query or fragment")
    try:
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    text = parts.geturl()
    return text if text.endswith("/") else f"{text}/"


@dataclass(frozen=True)
class EurekaInstance:
    instance_id: str
    app: str
    host_name: str
    ip_addr: str
    port: int | None
    status: str
    # UNKNOWN when no override is set; OUT_OF_SERVICE while one is.
    overridden_status: str
    last_updated: datetime | None
    metadata: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict) -> EurekaInstance:
        port = data.get("port")
        number = port.get("$") if isinstance(port, dict) else port
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        return cls(
            instance_id=str(data.get("instanceId") or data.get("hostName") or ""),
            app=str(data.get("app") or ""),
            host_name=str(data.get("hostName") or ""),
            ip_addr=str(data.get("ipAddr") or ""),
            port=_int(number),
            status=str(data.get("status") or "UNKNOWN"),
            overridden_status=str(data.get("overriddenStatus") or data.get("overriddenstatus") or "UNKNOWN"),
            last_updated=_millis(data.get("lastUpdatedTimestamp")),
            metadata={str(k): str(v) for k, v in metadata.items() if k != "@class"},
        )

    @property
    def out_of_service_override(self) -> bool:
        return self.overridden_status == OUT_OF_SERVICE


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _millis(value: Any) -> datetime | None:
    stamp = _int(value)
    return datetime.fromtimestamp(stamp / 1000, tz=UTC) if stamp else None


def error_from_response(response: requests.Response, what: str) -> IntegrationError:
    code = response.status_code
    cause = (response.text or response.reason or f"HTTP {code}").strip()[:300]
    kwargs: dict[str, Any] = {"cause": cause, "status": code}
    if code in (401, 403):
        return Unauthorized(f"Eureka refused {what} ({code}): the server asks for credentials", **kwargs)
    if code == 404:
        return NotFound(f"Eureka does not know {what}", **kwargs)
    if code == 429 or code >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return ServerError(f"Eureka answered {code} for {what}", retry_after=retry_after, **kwargs)
    if code == 400:
        return Invalid(f"Eureka rejected {what}", **kwargs)
    return IntegrationError(f"Eureka answered {code} for {what}", **kwargs)


class EurekaClient:
    def __init__(self, service_url: str, *, timeout: float | tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        try:
            self.base_url = check_service_url(service_url)
        except ValueError as exc:
            raise Invalid(f"The Eureka URL {service_url!r} cannot be used: {exc}") from None
        self._session = make_session(timeout)
        self._session.headers["Accept"] = "application/json"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> EurekaClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.request(method, f"{self.base_url}{path}", **kwargs)
        except requests.exceptions.RequestException as exc:
            raise transport_error(exc, SYSTEM) from exc
        if response.status_code not in (200, 204):
            raise error_from_response(response, what)
        return response

    @staticmethod
    def _path(app: str, instance_id: str | None = None) -> str:
        path = f"apps/{quote(app.upper(), safe='')}"
        return f"{path}/{quote(instance_id, safe='')}" if instance_id is not None else path

    def instances(self, app: str) -> list[EurekaInstance]:
        """The instances Eureka knows for ``app`` (case-insensitive), in Eureka's order; [] when none."""
        what = f"the instances of {app.upper()}"
        try:
            response = self._call("GET", self._path(app), what)
        except NotFound:
            return []
        try:
            application = response.json()["application"]
        except (ValueError, KeyError, TypeError):
            cause = response.text[:200]
            raise ServerError(f"Eureka sent no application JSON for {what}", cause=cause) from None
        found = application.get("instance") or []
        # Older servers (XStream's JSON) send a lone instance as an object instead of a list of one.
        if isinstance(found, dict):
            found = [found]
        return [EurekaInstance.from_json(item) for item in found if isinstance(item, dict)]

    def instance(self, app: str, instance_id: str) -> EurekaInstance | None:
        """One instance, read past the server's response cache; None when Eureka does not know it."""
        try:
            response = self._call("GET", self._path(app, instance_id), f"instance {instance_id}")
        except NotFound:
            return None
        try:
            return EurekaInstance.from_json(response.json()["instance"])
        except (ValueError, KeyError, TypeError):
            raise ServerError("Eureka sent no instance JSON", cause=response.text[:200]) from None

    def status_override_set(self, app: str, instance_id: str, status: str = OUT_OF_SERVICE) -> None:
        """Override the instance's status (OUT_OF_SERVICE takes it out of every caller's next fetch).
        NotFound when Eureka does not know the instance."""
        self._call(
            "PUT",
            f"{self._path(app, instance_id)}/status",
            f"instance {instance_id} of {app.upper()}",
            params={"value": status},
        )

    def status_override_remove(self, app: str, instance_id: str, fallback: str = UP) -> None:
        """Remove the override; ``fallback`` is the status until the instance's heartbeat brings its own."""
        self._call(
            "DELETE",
            f"{self._path(app, instance_id)}/status",
            f"instance {instance_id} of {app.upper()}",
            params={"value": fallback},
        )
