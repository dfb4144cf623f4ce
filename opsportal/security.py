"""Security plumbing that settings, URLs and the ASGI app share: the WebSocket Origin check, the API
documentation's access rule and the checks that refuse an unsafe production configuration."""

import secrets
from functools import wraps
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http.request import split_domain_port, validate_host
from rest_framework.permissions import BasePermission

_DEFAULT_PORTS = {"http": 80, "https": 443}


# --- WebSocket Origin -------------------------------------------------------------------------


def _normalized(origin: str) -> str | None:
    """``scheme://host:port`` with the default port made explicit, or None for anything else."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    return f"{parts.scheme}://{parts.hostname.lower()}:{port or _DEFAULT_PORTS[parts.scheme]}"


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def websocket_own_origin(scope) -> str | None:
    """The origin the portal is served under for this connection: the scheme (from the connection, or
    the trusted proxy header when SECURE_PROXY_SSL_HEADER is set), the Host header's host and port."""
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        forwarded = _header(scope, meta_name.removeprefix("HTTP_").lower().replace("_", "-").encode())
        if forwarded is not None:
            scheme = "https" if forwarded.split(",")[0].strip() == secure_value else "http"
    host = None
    if settings.USE_X_FORWARDED_HOST:
        host = _header(scope, b"x-forwarded-host")
    host = host or _header(scope, b"host")
    if not host:
        return None
    domain, _port = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    return _normalized(f"{scheme}://{host}")


def websocket_origin_allowed(scope) -> bool:
    origin = _header(scope, b"origin")
    normalized = _normalized(origin) if origin else None
    if normalized is None:
        return False
    if normalized == websocket_own_origin(scope):
        return True
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "://*." in trusted:
            # Django's CSRF form https://*.example.com: any subdomain, with the scheme and port as written.
            scheme, _, pattern = trusted.partition("://*")
            wanted = _normalized(f"{scheme}://wildcard{pattern}")
            if (
                wanted
                and normalized.startswith(f"{scheme}://")
                and normalized.endswith(wanted.split("://wildcard")[1])
            ):
                return True
        elif normalized == _normalized(trusted):
            return True
    return False


class OriginValidator:
    """Accepts a WebSocket only from the page's own origin (scheme, host and port) or a configured trusted
    origin. Channels' AllowedHostsOriginValidator compares only the host, so any port or plain http on an
    allowed host could open a socket with the user's cookies."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not websocket_origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


# --- API documentation -------------------------------------------------------------------------


class ApiDocsAccess(BasePermission):
    """The schema describes every endpoint: signed-in users only, unless OPSPORTAL_API_DOCS_PUBLIC says so."""

    def has_permission(self, request, view):
        return settings.OPSPORTAL_API_DOCS_PUBLIC or bool(request.user and request.user.is_authenticated)


def api_docs_page(view):
    """The Swagger page is for people: send a signed-out one to the login page instead of a bare 403."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not settings.OPSPORTAL_API_DOCS_PUBLIC and not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapped


# --- Content-Security-Policy ------------------------------------------------------------------


class ContentSecurityPolicyMiddleware:
    """Scripts and styles only from our own static files, or inline with this response's nonce
    (``request.csp_nonce``). Django 5.2 has no CSP of its own; the policy is small enough to keep here.

    'self' covers the live-events WebSocket (CSP 3 matches ws/wss on the page's host). Images allow
    data: URIs for Bootstrap's and Swagger UI's inline SVG icons."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.csp_nonce = secrets.token_urlsafe(16)
        response = self.get_response(request)
        if settings.OPSPORTAL_CSP_ENABLED and "Content-Security-Policy" not in response:
            nonce = f"'nonce-{request.csp_nonce}'"
            policy = {
                "default-src": "'self'",
                "script-src": f"'self' {nonce}",
                "style-src": f"'self' {nonce}",
                "img-src": "'self' data:",
                "font-src": "'self' data:",
                "connect-src": "'self'",
                "object-src": "'none'",
                "base-uri": "'self'",
                "form-action": "'self'",
                "frame-ancestors": "'none'",
            }
            response["Content-Security-Policy"] = "; ".join(f"{k} {v}" for k, v in policy.items())
        return response
