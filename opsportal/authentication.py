"""API token authentication by digest (see opsportal.tokens). Its own module: DRF imports authentication
classes while it loads its views, so this one may not import any view."""

import hashlib

from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[: Token._meta.get_field("key").max_length]


class DigestTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``, looked up by the key's digest."""

    def authenticate_credentials(self, key):
        return super().authenticate_credentials(token_digest(key))
