"""The portal's only way to talk to a container registry (Docker Registry HTTP API v2 / OCI distribution).

One ``requests.Session`` per client from ``make_session`` (default timeout, User-Agent, no automatic retries:
the tasks retry transient errors). Authentication follows the registry's lead: on a 401 the
``WWW-Authenticate`` challenge says Bearer (fetch a token from the realm, with Basic credentials if we have
them) or Basic (send the credentials). Tokens are cached per scope until they expire.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from integrations.errors import (
    IntegrationError,
    Invalid,
    NotFound,
    ServerError,
    Unauthorized,
)
from integrations.http import DEFAULT_TIMEOUT, make_session, transport_error

PAGE_SIZE = 100
# All four, always: a missing OCI type turns a stored OCI object into a misleading 404 (contract 9.2).
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)

_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


# --- small results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Digest:
    digest: str  # sha256:<hex> of the top-level manifest or index: pin deployments to this
    media_type: str
    size: int = 0


def image_ref(registry_host: str, repository: str, digest: str) -> str:
    """``host/repo@sha256:...``, the immutable reference a Deployment should use."""
    _check_repository(repository)
    if not _DIGEST.fullmatch(digest):
        raise Invalid(f"not a digest: {digest!r}")
    host = registry_host.split("://", 1)[-1].rstrip("/")
    return f"{host}/{repository}@{digest}"


def _check_repository(repository: str) -> None:
    if not _REPOSITORY.fullmatch(repository) or len(repository) > 255:
        raise Invalid(f"not a valid repository name: {repository!r}")


def _check_reference(reference: str) -> None:
    if not (_TAG.fullmatch(reference) or _DIGEST.fullmatch(reference)):
        raise Invalid(f"not a valid tag or digest: {reference!r}")


# --- transport ----------------------------------------------------------------------------------------


def error_from_response(response: requests.Response, what: str) -> IntegrationError:
    code = response.status_code
    errors: list[dict] = []
    try:
        body = response.json() if response.content else {}
        errors = (body.get("errors") or []) if isinstance(body, dict) else []
    except ValueError:
        pass
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    registry_code = str(first.get("code") or "")
    cause = ": ".join(part for part in (registry_code, str(first.get("message") or "")) if part) or (
        response.reason or f"HTTP {code}"
    )
    kwargs: dict[str, Any] = {"cause": cause, "status": code, "details": {"code": registry_code}}
    if code in (401, 403):
        return Unauthorized(f"the registry refused access to {what}", **kwargs)
    if code == 404:
        return NotFound(f"{what} not found in the registry", **kwargs)
    if code == 429 or code >= 500:
        return ServerError(f"the registry answered {code}", **kwargs)
    if code == 400:
        return Invalid(f"the registry rejected the request for {what}", **kwargs)
    return IntegrationError(f"the registry answered {code} for {what}", **kwargs)


def error_from_transport(exc: requests.exceptions.RequestException) -> IntegrationError:
    return transport_error(exc, "the registry")


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


# --- the client ---------------------------------------------------------------------------------------


class RegistryClient:
    def __init__(
        self,
        base_url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        if not base_url:
            raise Invalid("the registry is not configured (no URL)")
        self.base_url = base_url.rstrip("/")
        self._credentials = (username, password or "") if username else None
        self._session = make_session(timeout)
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, monotonic expiry)
        self._basic = False  # the registry asked for Basic: send it up front from now on

    # -- plumbing ------------------------------------------------------------------------------------

    def _auth_header(self, scope: str) -> dict[str, str]:
        token, expires = self._tokens.get(scope, ("", 0.0))
        if token and time.monotonic() < expires:
            return {"Authorization": f"Bearer {token}"}
        return {}

    def _send(self, method: str, url: str, scope: str, headers: dict[str, str]) -> requests.Response:
        auth = self._credentials if self._basic else None
        try:
            return self._session.request(
                method, url, headers={**headers, **self._auth_header(scope)}, auth=auth, allow_redirects=True
            )
        except requests.exceptions.RequestException as exc:
            raise error_from_transport(exc) from exc

    def _request(
        self, method: str, url: str, *, repository: str, what: str, headers: dict[str, str] | None = None
    ) -> requests.Response:
        scope = f"repository:{repository}:pull" if repository else ""
        response = self._send(method, url, scope, headers or {})
        if response.status_code == 401 and self._authenticate(response, scope, what):
            response = self._send(method, url, scope, headers or {})
        return response

    def _authenticate(self, response: requests.Response, scope: str, what: str) -> bool:
        """Answer a 401 challenge; True when a retry with new credentials makes sense."""
        scheme, params = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic":
            if self._credentials is None or self._basic:
                return False
            self._basic = True
            return True
        if scheme != "bearer" or not params.get("realm"):
            return False
        query = {"service": params.get("service", "")}
        if params.get("scope") or scope:
            query["scope"] = params.get("scope") or scope
        realm = params["realm"]
        if urlsplit(realm).scheme not in ("http", "https"):
            raise Unauthorized("the registry sent an unusable token realm", cause=realm)
        try:
            answer = self._session.get(realm, params=query, auth=self._credentials)
        except requests.exceptions.RequestException as exc:
            raise error_from_transport(exc) from exc
        if answer.status_code != 200:
            raise error_from_response(answer, f"a token for {what}")
        try:
            body = answer.json()
        except ValueError:
            raise ServerError("the registry token service sent no JSON", cause=answer.text[:200]) from None
        token = body.get("token") or body.get("access_token")
        if not token:
            raise Unauthorized("the registry token service sent no token")
        lifetime = float(body.get("expires_in") or 60)
        self._tokens[scope] = (token, time.monotonic() + max(lifetime - 10, 1))
        return True

    def _manifest_url(self, repository: str, reference: str) -> str:
        _check_repository(repository)
        _check_reference(reference)
        return f"{self.base_url}/v2/{repository}/manifests/{reference}"

    # -- API -----------------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: raises unless the registry answers and accepts our credentials."""
        response = self._request("GET", f"{self.base_url}/v2/", repository="", what="the registry")
        if response.status_code != 200:
            raise error_from_response(response, "the registry")

    def resolve(self, repository: str, tag: str) -> Digest:
        """The digest and media type of ``repository:tag`` (a digest is accepted too)."""
        url = self._manifest_url(repository, tag)
        what = f"{repository}:{tag}"
        headers = {"Accept": MANIFEST_ACCEPT}
        response = self._request("HEAD", url, repository=repository, what=what, headers=headers)
        if response.status_code == 200 and response.headers.get("Docker-Content-Digest"):
            return Digest(
                digest=response.headers["Docker-Content-Digest"],
                media_type=response.headers.get("Content-Type", "").split(";")[0].strip(),
                size=int(response.headers.get("Content-Length") or 0),
            )
        # HEAD has no body: use GET for the error code, or to hash the manifest if no digest header came.
        response = self._request("GET", url, repository=repository, what=what, headers=headers)
        if response.status_code != 200:
            raise error_from_response(response, what)
        digest = response.headers.get("Docker-Content-Digest") or (
            "sha256:" + hashlib.sha256(response.content).hexdigest()
        )
        return Digest(
            digest=digest,
            media_type=response.headers.get("Content-Type", "").split(";")[0].strip(),
            size=len(response.content),
        )

    def exists(self, repository: str, digest_or_tag: str) -> bool:
        url = self._manifest_url(repository, digest_or_tag)
        what = f"{repository}:{digest_or_tag}"
        response = self._request(
            "HEAD", url, repository=repository, what=what, headers={"Accept": MANIFEST_ACCEPT}
        )
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise error_from_response(response, what)

    def tags(self, repository: str, *, page_size: int = PAGE_SIZE) -> list[str]:
        """Every tag of ``repository``, sorted, following the (relative) ``Link: rel="next"`` pages.

        Sorted here because distribution 2.8 returns an unpaged list in storage order, not lexical order.
        """
        _check_repository(repository)
        url: str | None = f"{self.base_url}/v2/{repository}/tags/list?n={int(page_size)}"
        found: list[str] = []
        base = urlsplit(self.base_url)
        while url:
            response = self._request("GET", url, repository=repository, what=f"tags of {repository}")
            if response.status_code != 200:
                raise error_from_response(response, f"repository {repository}")
            try:
                found.extend((response.json() or {}).get("tags") or [])
            except ValueError:
                raise ServerError("the registry sent no JSON tag list", cause=response.text[:200]) from None
            link = response.links.get("next", {}).get("url")
            url = urljoin(url, link) if link else None
            if url and urlsplit(url)[:2] != base[:2]:  # never follow (and send credentials) off-host
                raise ServerError("the registry's next-page link points to another host", cause=url)
        return sorted(set(found))
