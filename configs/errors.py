"""What goes wrong with Apollo, as sentences for people and an HTTP status for the API.

Apollo's answers arrive as the client's typed errors (integrations.errors); ``apollo_error`` turns each
into a ``ConfigError`` that says what to do. Pages show ``str(error)`` (a form error or a message), the
API answers ``status`` in the one error shape. A refusal that is about the project's settings or the
portal (a rejected token, Apollo unreachable) is 502: the caller did nothing wrong.
"""

from __future__ import annotations

import re

from django.utils.translation import gettext as _

from integrations.errors import (
    IntegrationError,
    Invalid,
    NotFound,
    RateLimited,
    Timeout,
    Unauthorized,
    Unreachable,
)


class ConfigError(Exception):
    """A refusal with a sentence for people; ``status`` is what the API answers."""

    status = 502

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class ApolloNotConfigured(ConfigError):
    """The portal has no APOLLO_PORTAL_URL, or the project no Apollo settings or token."""


class ConfigIncomplete(ConfigError):
    """Some steps were done (changes applied, releases rolled back), then one failed or the rollback
    chain led elsewhere: the steps done stay audited, and this says how far it got."""


_UNKNOWN_USER = re.compile(r"user not exists for userName:\s*(\S+)", re.I)
_ITEM_EXISTS = re.compile(r"item already exists", re.I)


def _reason(exc: IntegrationError, cause: str) -> str:
    """The client's name for the refusal (``details["reason"]``), else read from Apollo's message."""
    reason = str((exc.details or {}).get("reason") or "")
    if not reason and _UNKNOWN_USER.search(cause):
        reason = "user_unknown"
    if not reason and _ITEM_EXISTS.search(cause):
        reason = "item_exists"
    return reason


def apollo_error(exc: IntegrationError, *, where: str) -> ConfigError:
    """The ConfigError for a failed Apollo call on ``where`` (e.g. "FAT/orders-app/default/application")."""
    cause = exc.cause or exc.message
    reason = _reason(exc, cause)
    if isinstance(exc, Unauthorized):
        if exc.status == 401:
            text = _(
                "Apollo does not know the project's Open API token (401): set a valid token in the "
                "project's Apollo settings."
            )
        else:
            text = _(
                "Apollo refused the project's Open API token for %(where)s (403: %(cause)s): ask the Apollo "
                "administrator to grant the token this namespace (modify and release)."
            ) % {"where": where, "cause": cause}
        return ConfigError(text, status=502)
    if isinstance(exc, NotFound):
        if reason == "item_missing":
            text = _("The key is no longer in %(where)s (404): reload the page.") % {"where": where}
        else:
            text = _(
                "Apollo has no %(where)s (404: %(cause)s): check the app id, cluster and namespaces."
            ) % {
                "where": where,
                "cause": cause,
            }
        return ConfigError(text, status=404)
    if isinstance(exc, Invalid):
        if reason == "user_unknown":
            user = _UNKNOWN_USER.search(cause)
            return ConfigError(
                _(
                    "Apollo does not know the user %(user)s: every change names its portal user as the "
                    "operator, so the Apollo administrator must create that user first."
                )
                % {"user": user.group(1) if user else "?"},
                status=400,
            )
        if reason == "item_exists":
            return ConfigError(
                _("The key already exists in %(where)s: reload the page and edit it instead.")
                % {"where": where},
                status=409,
            )
        if reason == "only_one_active":
            return ConfigError(
                _("%(where)s has no earlier release to go back to: Apollo keeps its only active release.")
                % {"where": where},
                status=409,
            )
        if reason in ("locked", "self_release", "not_active", "release_unknown"):
            # The namespace's state in Apollo forbids it (its lock, a release already rolled back).
            return ConfigError(_("Apollo refused: %(message)s.") % {"message": exc.message}, status=409)
        return ConfigError(
            _("Apollo refused the request for %(where)s (400): %(cause)s") % {"where": where, "cause": cause},
            status=400,
        )
    if isinstance(exc, RateLimited):
        if exc.retry_after:
            text = _(
                "Apollo limits the requests of the project's token (429): try again in %(seconds)d s."
            ) % {"seconds": int(exc.retry_after)}
        else:
            text = _("Apollo limits the requests of the project's token (429): try again in a moment.")
        return ConfigError(text, status=502)
    if isinstance(exc, Unreachable | Timeout):
        return ConfigError(
            _(
                "Apollo did not answer (%(cause)s): reload the page to see whether anything changed, "
                "then try again."
            )
            % {"cause": exc.message},
            status=502,
        )
    return ConfigError(_("Apollo failed (%(cause)s): try again later.") % {"cause": str(exc)}, status=502)
