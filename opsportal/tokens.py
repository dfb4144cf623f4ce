"""API tokens: issuing one is a credential handed out, so it is audited like any other change; and,
like a password, only a digest of it is stored.

The clear key exists in the answer that hands it out and nowhere else: DRF's Token row keeps the
SHA-256 digest in its ``key`` column (the first 40 hex digits, the column's width: 160 bits, and the
keys themselves are 160 random bits, so nothing can be guessed from it). As the digest cannot be turned
back into the key, asking again issues a new key and the old one stops working.
"""

import secrets

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response

from observability.services import audit_record
from opsportal.authentication import token_digest
from opsportal.http import client_address


@transaction.atomic
def token_issue(*, user, remote_addr: str | None = None) -> str:
    """A new API token for the user (replacing any earlier one); returns the clear key, which is not
    kept. The audit row names the user, never the key."""
    replaced, _ = Token.objects.filter(user=user).delete()
    key = secrets.token_hex(20)
    Token.objects.create(user=user, key=token_digest(key))
    audit_record(
        actor=user,
        verb="token.rotate" if replaced else "token.create",
        target=user,
        changes={"summary": "API token replaced" if replaced else "new API token"},
        remote_addr=remote_addr,
    )
    return key


@transaction.atomic
def token_revoke(*, actor, user, remote_addr: str | None = None) -> bool:
    """Delete the user's API token; False when there was none. The audit row names the user, never the key."""
    deleted, _ = Token.objects.filter(user=user).delete()
    if deleted:
        audit_record(
            actor=actor,
            verb="token.revoke",
            target=user,
            changes={"summary": "API token revoked"},
            remote_addr=remote_addr,
        )
    return bool(deleted)


class ObtainTokenView(ObtainAuthToken):
    """DRF's token endpoint (same request and answer), with the issue audited and the key not kept."""

    @extend_schema(
        summary="Exchange a username and password for a new API token (the previous one stops working)"
    )
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        key = token_issue(user=serializer.validated_data["user"], remote_addr=client_address(request))
        return Response({"token": key})
