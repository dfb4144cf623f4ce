"""Credentials at rest: Fernet encryption with the keys in settings.SECRETS_ENCRYPTION_KEYS.

The first key encrypts; every key decrypts, so a new key can be put first and old rows re-encrypted
(``rotate_secret``) before the old key is dropped.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models
from django.db.models.query_utils import DeferredAttribute


class SecretDecryptionError(Exception):
    """A stored secret cannot be read: wrong or missing key, or the ciphertext was altered."""


class SecretText(str):
    """A plaintext secret that keeps itself out of reprs, tracebacks and debug logs."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SecretText('***')"


def _fernet() -> MultiFernet:
    keys = settings.SECRETS_ENCRYPTION_KEYS
    if not keys:
        raise SecretDecryptionError("No encryption keys configured (OPSPORTAL_SECRETS_KEYS).")
    return MultiFernet([Fernet(key) for key in keys])


def encrypt_secret(plaintext: str) -> str:
    return _fernet().encrypt(str(plaintext).encode()).decode()


def decrypt_secret(ciphertext: str) -> SecretText:
    try:
        return SecretText(_fernet().decrypt(ciphertext.encode()).decode())
    except InvalidToken:
        raise SecretDecryptionError(
            "Cannot decrypt a stored secret: it was encrypted with a key that is not in "
            "OPSPORTAL_SECRETS_KEYS, or it has been altered."
        ) from None


def rotate_secret(ciphertext: str) -> str:
    """Re-encrypt with the first key (after adding a new key in front)."""
    try:
        return _fernet().rotate(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretDecryptionError("Cannot rotate a stored secret: no configured key decrypts it.") from None


class _SecretAttribute(DeferredAttribute):
    def __set__(self, instance, value):
        if isinstance(value, str) and not isinstance(value, SecretText):
            value = SecretText(value)
        instance.__dict__[self.field.attname] = value


class EncryptedTextField(models.TextField):
    """Plaintext on the Python side (as ``SecretText``), Fernet ciphertext in the column.

    The empty string stays empty (no secret). Lookups on the column are meaningless: every
    encryption of the same text differs.
    """

    descriptor_class = _SecretAttribute

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt_secret(value)

    def to_python(self, value):
        if isinstance(value, str) and not isinstance(value, SecretText):
            return SecretText(value)
        return value

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_secret(value)

    def value_to_string(self, obj):
        # Serialisation (dumpdata) never writes the plaintext.
        return ""
