"""Secret environment variables: {NAME: value} kept Fernet-encrypted in one EncryptedTextField (on the
ticket and on the project environment) as JSON. Requests and specs carry only the names.

An edit is a set of changes: ``NAME=value`` sets or replaces NAME, ``NAME=`` (empty value) removes it, and
names not mentioned keep their stored value, so a form left empty changes nothing.
"""

from __future__ import annotations

import base64
import json

from django.core.exceptions import ValidationError
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext as _

from opsportal.secrets import SecretText

FIELD = "secret_env_vars"
NAMES_KEY = "secret_env_names"
# The module lived in deploys when the digests were first stored; the salt keeps that name so they match.
_HMAC_SALT = "opsportal.deploys.secret_env"


def load(stored: str) -> dict[str, SecretText]:
    """The decrypted {NAME: value} of an EncryptedTextField's value ("" = none)."""
    if not stored:
        return {}
    return {name: SecretText(value) for name, value in json.loads(stored).items()}


def dump(values: dict[str, str]) -> str:
    return json.dumps(dict(sorted(values.items())), ensure_ascii=False) if values else ""


def merge(current: dict[str, str], changes: dict | None) -> dict[str, SecretText]:
    """``current`` with ``changes`` applied; raises ValidationError on a malformed change set.

    Names are checked by the spec's rules (``manifests.spec_errors``) once they are part of a spec."""
    merged = {name: SecretText(value) for name, value in current.items()}
    if changes is None:
        return merged
    if not isinstance(changes, dict):
        raise ValidationError({FIELD: _("Expected an object of NAME: value.")})
    for name, value in changes.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValidationError({FIELD: _("Expected an object of NAME: value.")})
        if "\0" in value:
            raise ValidationError(
                {FIELD: _("the value of '%(name)s' must not contain NUL.") % {"name": name}}
            )
        if value == "":
            merged.pop(name, None)
        else:
            merged[name] = SecretText(value)
    return merged


def with_names(request: dict, values: dict) -> dict:
    """``request`` carrying the names of ``values`` (and no names key when there are none, so requests
    without secrets stay as they were)."""
    result = {key: value for key, value in request.items() if key != NAMES_KEY}
    if values:
        result[NAMES_KEY] = sorted(values)
    return result


def digest(values: dict[str, str]) -> str:
    """A keyed HMAC (key derived from SECRET_KEY) of the values, for the pod-template annotation: it
    changes whenever a value does, and reveals nothing about them."""
    if not values:
        return ""
    canonical = json.dumps(dict(sorted(values.items())), ensure_ascii=False, separators=(",", ":"))
    return salted_hmac(_HMAC_SALT, canonical, algorithm="sha256").hexdigest()


def fingerprint(raw: bytes) -> str:
    """What previews and diffs show instead of a value: its size and a short keyed HMAC, so a changed
    value shows as a changed line without the value itself."""
    mac = salted_hmac(_HMAC_SALT + ".fingerprint", raw, algorithm="sha256").hexdigest()[:12]
    return f"<secret: {len(raw)} bytes, hmac {mac}>"


def redact_secret_object(obj: dict) -> dict:
    """A Secret with every value replaced by its fingerprint; other objects unchanged."""
    if obj.get("kind") != "Secret":
        return obj
    redacted = {key: value for key, value in obj.items() if key not in ("data", "stringData")}
    data = {}
    for name, value in (obj.get("data") or {}).items():
        try:
            raw = base64.b64decode(value or "")
        except ValueError:
            raw = b""
        data[name] = fingerprint(raw)
    for name, value in (obj.get("stringData") or {}).items():
        data[name] = fingerprint(str(value).encode())
    if data:
        redacted["data"] = data
    return redacted


def changes(old: dict[str, str], new: dict[str, str]) -> dict[str, list[str]]:
    """Which names were added, changed or removed (names only); {} when nothing changed."""
    result = {
        "added": sorted(set(new) - set(old)),
        "changed": sorted(name for name in set(old) & set(new) if old[name] != new[name]),
        "removed": sorted(set(old) - set(new)),
    }
    return {key: names for key, names in result.items() if names}
