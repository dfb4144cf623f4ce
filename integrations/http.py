"""The one way the HTTP clients talk: a session with a default timeout, our User-Agent and no retries.

The tasks retry transient errors (``integrations.errors``), so a session never retries on its own, and
no proxy or .netrc credential is picked up from the worker's environment.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from integrations.errors import IntegrationError, Timeout, Unreachable

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
USER_AGENT = "opsportal"


class _Session(requests.Session):
    def __init__(self, timeout: float | tuple[float, float]) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, **kwargs)


def make_session(
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT, user_agent: str = USER_AGENT
) -> requests.Session:
    """Every request gets ``timeout`` and our User-Agent; no retries of reads."""
    session = _Session(timeout)
    session.headers["User-Agent"] = user_agent
    session.trust_env = False
    adapter = HTTPAdapter(max_retries=Retry(total=0, connect=0, read=False, redirect=0, status=0))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def transport_error(exc: requests.exceptions.RequestException, system: str) -> IntegrationError:
    """The typed error for a request that got no HTTP answer from ``system`` ("the registry", …)."""
    if isinstance(exc, requests.exceptions.Timeout):  # before ConnectionError: ConnectTimeout is both
        return Timeout(f"{system} did not answer in time", cause=str(exc))
    if isinstance(exc, requests.exceptions.SSLError):
        return Unreachable(f"TLS handshake with {system} failed", permanent=True, cause=str(exc))
    if isinstance(exc, requests.exceptions.ConnectionError | requests.exceptions.ChunkedEncodingError):
        return Unreachable(f"cannot connect to {system}", cause=str(exc))
    return IntegrationError(f"{system} request failed", cause=str(exc))
