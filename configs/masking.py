"""Which configuration keys hold secrets. Pure: no database, no settings.

A key is secret-looking when, lower-cased and with its separators dropped, it contains one of the words
below: ``spring.datasource.password``, ``DB_PASSWD``, ``jwt.signingKey``, ``aws.secretAccessKey`` and
``oss-access-key-id`` all are. Such values are never shown back (pages, API answers, the audit trail);
they can be replaced, not read. A value that carries a secret under an innocent key (a JDBC URL with
``password=`` in it, a whole YAML namespace) is not caught: the rule is about keys.
"""

from __future__ import annotations

import re

SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "credential",
    "privatekey",
    "accesskey",
    "apikey",
    "signingkey",
    "encryptkey",
    "encryptionkey",
)
MASK = "••••••"
_SEPARATORS = re.compile(r"[^a-z0-9]")


def is_secret_key(key: str) -> bool:
    folded = _SEPARATORS.sub("", (key or "").lower())
    return any(word in folded for word in SECRET_WORDS)


def shown_value(key: str, value: str | None) -> str | None:
    """The value as people may see it: the mask for a secret-looking key (None stays None)."""
    if value is None:
        return None
    return MASK if is_secret_key(key) else value
