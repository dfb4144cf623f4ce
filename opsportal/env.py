"""Tiny typed readers for settings that come from the environment."""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Environment variable {name} is required.")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (true/false), got {raw!r}.")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}.") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


# The values .env.example ships with: a deployment that copied the file without editing it.
PLACEHOLDER_SECRET_KEYS = frozenset({"change-me", "changeme", "secret", "django-insecure"})
MIN_SECRET_KEY_LENGTH = 32


def check_secret_key(secret_key: str, *, debug: bool) -> None:
    """Refuse the placeholder (or a short key) outside DEBUG: sessions and reset links would be forgeable."""
    if debug:
        return
    if secret_key.strip().lower() in PLACEHOLDER_SECRET_KEYS or len(secret_key) < MIN_SECRET_KEY_LENGTH:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is the placeholder from .env.example (or shorter than "
            f"{MIN_SECRET_KEY_LENGTH} characters) and DEBUG is off. Generate one with: "
            'python -c "import secrets; print(secrets.token_urlsafe(50))"'
        )


def proxy_ssl_header(raw: str) -> tuple[str, str] | None:
    """``X-Forwarded-Proto=https`` -> ``("HTTP_X_FORWARDED_PROTO", "https")``; empty means no proxy header."""
    if not raw.strip():
        return None
    name, sep, value = raw.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ImproperlyConfigured(
            f"DJANGO_SECURE_PROXY_SSL_HEADER must look like X-Forwarded-Proto=https, got {raw!r}."
        )
    meta_name = name.strip().upper().replace("-", "_")
    if not meta_name.startswith("HTTP_"):
        meta_name = f"HTTP_{meta_name}"
    return meta_name, value.strip()
