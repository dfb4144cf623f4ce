"""What the DingTalk and WeCom group robots have in common: a JSON POST to a webhook whose answer is
HTTP 200 with ``{"errcode": …, "errmsg": …}`` whether the message was sent or not.

``post_robot`` maps everything that is not such an answer (no connection, 429, 5xx, another status, no
JSON) to the typed errors of ``integrations.errors`` and returns the errcode and errmsg; each robot's
client maps its own errcodes with a table given to ``error_from_errcode``. ``check_size`` is the local
refusal of a message the service would cut or refuse for its length.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import requests

from integrations.errors import (
    IntegrationError,
    Invalid,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    parse_retry_after,
)
from integrations.http import transport_error

DEFAULT_TIMEOUT = (5.0, 15.0)
SYSTEM_BUSY = -1  # both services' "try again later"
_CREDENTIAL_IN_URL = re.compile(r"\b(access_token|key|sign|timestamp)=[^&\s'\"]*")


class ErrcodeMeaning(NamedTuple):
    error: type[IntegrationError]
    message: str
    retry_after: float | None = None


def post_robot(session: requests.Session, url: str, body: dict[str, Any], system: str) -> tuple[int, str]:
    """POST ``body`` to the webhook ``url``; (errcode, errmsg) of an HTTP 200 JSON answer."""
    try:
        response = session.post(url, json=body)
    except requests.exceptions.RequestException as exc:
        error = transport_error(exc, system)
        # requests names the URL in its messages, and the robot's credential is in the URL.
        error.cause = _CREDENTIAL_IN_URL.sub(r"\1=…", error.cause)
        raise error from None
    code = response.status_code
    if code != 200:
        cause = response.text[:200] or response.reason or f"HTTP {code}"
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if code == 429:
            raise RateLimited(
                f"{system} asked to slow down (429)", status=code, cause=cause, retry_after=retry_after
            )
        if code >= 500:
            raise ServerError(f"{system} answered {code}", status=code, cause=cause, retry_after=retry_after)
        if code in (401, 403):
            raise Unauthorized(f"{system} refused the webhook ({code})", status=code, cause=cause)
        if code == 404:
            raise NotFound(f"{system} has no webhook at this address: check the webhook base", cause=cause)
        raise IntegrationError(f"{system} answered {code}", status=code, cause=cause)
    try:
        answer = response.json()
        return int(answer["errcode"]), str(answer.get("errmsg") or "")
    except (ValueError, KeyError, TypeError):
        # A proxy or captive portal answering 200 with a page: the message may not have gone out.
        raise ServerError(f"{system} sent no errcode", status=code, cause=response.text[:200]) from None


def check_size(text: str, limit: int | None, what: str) -> None:
    """Refuse an empty ``text``, or one longer than ``limit`` UTF-8 bytes, before sending it."""
    if not text.strip():
        raise Invalid(f"{what} is empty", causes=[{"field": "content", "message": "empty"}])
    if limit is None:
        return
    size = len(text.encode("utf-8"))
    if size > limit:
        raise Invalid(
            f"{what} is {size} bytes of UTF-8; the limit is {limit}",
            causes=[{"field": "content", "message": f"{size} > {limit} bytes"}],
        )


def error_from_errcode(
    errcodes: dict[int, ErrcodeMeaning], errcode: int, errmsg: str, system: str
) -> IntegrationError:
    """The typed error for a refused message; an errcode missing from the table is permanent ``Invalid``
    (retrying what we do not understand would only repeat it). errcode and errmsg go in ``details``."""
    meaning = errcodes.get(errcode)
    if meaning is None and errcode == SYSTEM_BUSY:
        meaning = ErrcodeMeaning(ServerError, f"{system} is busy")
    if meaning is None:
        meaning = ErrcodeMeaning(Invalid, f"{system} refused the message (errcode {errcode})")
    return meaning.error(
        meaning.message,
        cause=errmsg,
        status=200,
        details={"errcode": errcode, "errmsg": errmsg},
        retry_after=meaning.retry_after,
    )
