"""Alertmanager's webhook receiver, ``POST /api/alerts/alertmanager``. A machine endpoint: a session
is no credential; Alertmanager presents ``ALERTMANAGER_WEBHOOK_TOKEN`` as a bearer token, or
``ALERTMANAGER_WEBHOOK_USER``/``_PASSWORD`` as basic auth (its ``http_config``). It answers as soon as
the rows are written (2xx, or Alertmanager retries); messages go out from tasks."""

from __future__ import annotations

import base64
import binascii
import hmac
import json

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from rest_framework.settings import api_settings

from alerting.services.alerts import alerts_receive


def _error(detail: str, status: int, errors: dict | None = None) -> JsonResponse:
    return JsonResponse({"detail": detail, "errors": errors or {}}, status=status)  # the one error shape


def _same(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())


def webhook_allowed(request) -> bool:
    """The configured bearer token or basic-auth pair, compared in constant time. Nothing configured:
    nobody may post."""
    scheme, _sep, presented = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    presented = presented.strip()
    token = settings.ALERTMANAGER_WEBHOOK_TOKEN
    if token and scheme.lower() == "bearer":
        return _same(presented, token)
    user, password = settings.ALERTMANAGER_WEBHOOK_USER, settings.ALERTMANAGER_WEBHOOK_PASSWORD
    if user and password and scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(presented, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        given_user, _sep, given_password = decoded.partition(":")
        # Both compared whatever the first gives, so the time says nothing about which was wrong.
        return _same(given_user, user) & _same(given_password, password)
    return False


@csrf_exempt  # no session, no cookie: the credential is in the Authorization header
@require_POST
def alertmanager_webhook(request):
    if not webhook_allowed(request):
        return _error(_("Alertmanager's webhook token or basic auth is required."), 403)
    try:
        payload = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return _error(_("The body is not JSON."), 400)
    try:
        result = alerts_receive(payload=payload)
    except ValidationError as exc:
        errors = {
            api_settings.NON_FIELD_ERRORS_KEY if k == NON_FIELD_ERRORS else k: v
            for k, v in exc.message_dict.items()
        }
        general = " ".join(errors.get(api_settings.NON_FIELD_ERRORS_KEY, []))
        return _error(general or _("The notification is not a valid version 4 payload."), 400, errors)
    return JsonResponse(
        {
            "received": len(payload["alerts"]),
            "created": len(result.created),
            "changed": len(result.transitions),
        }
    )
