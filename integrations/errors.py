"""The errors every outbound client raises.

``permanent`` tells a task whether retrying can help: transient errors (unreachable, timeouts,
5xx/429) are retried with backoff, permanent ones (bad credentials, invalid input, missing objects)
never are. ``message`` is a sentence for people; ``cause`` is the technical reason underneath.
``retry_after`` is how many seconds the other side asked us to wait (its ``Retry-After`` header).
"""

from __future__ import annotations


class IntegrationError(Exception):
    permanent: bool = True

    def __init__(
        self,
        message: str,
        *,
        permanent: bool | None = None,
        cause: str = "",
        status: int | None = None,
        details: dict | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if permanent is not None:
            self.permanent = permanent
        self.cause = cause
        self.status = status
        self.details = details or {}
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.message} ({self.cause})" if self.cause and self.cause != self.message else self.message


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; None when absent or not in the delay-seconds form.

    The HTTP-date form is ignored on purpose: it depends on both clocks agreeing, and plain backoff is a
    safe fallback.
    """
    value = (value or "").strip()
    return float(value) if value.isascii() and value.isdigit() else None


class Unauthorized(IntegrationError):
    """The credential was rejected (401) or lacks the permission (403)."""

    permanent = True


class NotFound(IntegrationError):
    permanent = True


class Conflict(IntegrationError):
    permanent = True


class Invalid(IntegrationError):
    """The other side rejected the input; ``causes`` says which field and why."""

    permanent = True

    def __init__(self, message: str, *, causes: list[dict] | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.causes: list[dict] = [
            {"field": c.get("field", ""), "message": c.get("message", "")} for c in (causes or [])
        ]


class Unreachable(IntegrationError):
    """No connection: refused, DNS, routing, TLS handshake."""

    permanent = False


class Timeout(IntegrationError):
    permanent = False


class ServerError(IntegrationError):
    """5xx or 429 from the other side."""

    permanent = False


class RateLimited(ServerError):
    """The other side refused because we sent too much (HTTP 429, a chat robot's per-minute or quota
    errcode). Transient: try again after ``retry_after`` seconds."""

    permanent = False
