"""API tokens: issuing one is a credential handed out, so it is audited like any other change."""

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.response import Response

from observability.services import audit_record
from opsportal.http import client_address


@transaction.atomic
def token_issue(*, user, remote_addr: str | None = None) -> Token:
    """The user's API token, created on first use. The audit row names the user, never the key."""
    token, created = Token.objects.get_or_create(user=user)
    audit_record(
        actor=user,
        verb="token.create" if created else "token.issue",
        target=user,
        changes={"summary": "new API token" if created else "existing API token handed out"},
        remote_addr=remote_addr,
    )
    return token


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
    """DRF's token endpoint (same request and answer), with the issue audited."""

    @extend_schema(summary="Exchange a username and password for your API token")
    def post(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = token_issue(user=serializer.validated_data["user"], remote_addr=client_address(request))
        return Response({"token": token.key})
