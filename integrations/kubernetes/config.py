"""How to reach one cluster: a small value object, built from a token or a kubeconfig text.

Kubeconfigs are parsed here rather than by ``kubernetes.config``: a kubeconfig pasted into a web
portal must not make the portal run ``exec`` plugins or read files on its own disk, and the
library's loader writes embedded keys to temporary files that live until the process exits.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from urllib.parse import urlsplit

import yaml

from integrations.errors import Invalid


class KubeconfigError(Invalid, ValueError):
    """The kubeconfig text cannot be used; the message says why and what to do. Permanent: retrying
    cannot help until ops paste a usable one."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


@dataclass(frozen=True, repr=False)
class Connection:
    server: str
    ca_pem: str = ""
    verify_tls: bool = True
    token: str = ""
    client_cert_pem: str = ""
    client_key_pem: str = ""
    tls_server_name: str = ""

    @property
    def auth(self) -> str:
        if self.token:
            return "token"
        if self.client_cert_pem:
            return "client-certificate"
        return "none"

    def __repr__(self) -> str:
        return f"Connection(server={self.server!r}, auth={self.auth!r}, verify_tls={self.verify_tls})"


def check_server_url(url: str) -> str:
    parts = urlsplit(url or "")
    if "@" in parts.netloc:
        # Never echo this URL: it carries a credential, which would then be shown and logged.
        raise KubeconfigError("server URL must not contain a user name or password")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise KubeconfigError(f"server {url!r} is not an http(s) URL")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise KubeconfigError(f"server {url!r} has an invalid port") from None
    return url.rstrip("/")


def _named(doc: dict, section: str, name: str, key: str) -> dict:
    for entry in doc.get(section) or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(key)
            if isinstance(value, dict):
                return value
    raise KubeconfigError(f"{key} {name!r} is not defined in {section}")


def _pem(data: object, what: str) -> str:
    try:
        text = base64.b64decode(str(data), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise KubeconfigError(f"{what} is not base64-encoded PEM") from None
    if "-----BEGIN" not in text:
        raise KubeconfigError(f"{what} is not a PEM block")
    return text


_FILE_KEYS = ("certificate-authority", "client-certificate", "client-key", "tokenFile")
_UNSUPPORTED_USER_KEYS = {
    "exec": "exec credential plugins",
    "auth-provider": "auth providers",
    "username": "basic authentication",
}


def parse_kubeconfig(text: str) -> Connection:
    """The current context's server, CA and credential; raises KubeconfigError with the reason."""
    try:
        doc = yaml.safe_load(text or "")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise KubeconfigError(f"not valid YAML{where}") from None
    if not isinstance(doc, dict) or not doc.get("clusters") or not doc.get("contexts"):
        raise KubeconfigError("not a kubeconfig (clusters and contexts are missing)")
    context_name = doc.get("current-context")
    if not context_name:
        contexts = [c for c in doc["contexts"] if isinstance(c, dict)]
        if len(contexts) != 1:
            raise KubeconfigError("no current-context is set and there is more than one context")
        context_name = contexts[0].get("name")
    context = _named(doc, "contexts", context_name, "context")
    cluster = _named(doc, "clusters", context.get("cluster"), "cluster")
    user = _named(doc, "users", context.get("user"), "user") if context.get("user") else {}

    for key in _FILE_KEYS:
        if key in cluster or key in user:
            raise KubeconfigError(
                f"{key} refers to a file; embed the data instead "
                "(kubectl config view --raw --flatten --minify)"
            )
    for key, what in _UNSUPPORTED_USER_KEYS.items():
        if key in user:
            raise KubeconfigError(f"{what} are not supported; use a token or a client certificate")

    server = check_server_url(str(cluster.get("server") or ""))
    ca_pem = (
        _pem(cluster["certificate-authority-data"], "certificate-authority-data")
        if (cluster.get("certificate-authority-data"))
        else ""
    )
    token = str(user.get("token") or "").strip()
    cert = user.get("client-certificate-data")
    key = user.get("client-key-data")
    if bool(cert) != bool(key):
        raise KubeconfigError("client-certificate-data and client-key-data must both be set")
    if not token and not cert:
        raise KubeconfigError("the user has no token and no client certificate")
    return Connection(
        server=server,
        ca_pem=ca_pem,
        verify_tls=not cluster.get("insecure-skip-tls-verify", False),
        token=token,
        client_cert_pem=_pem(cert, "client-certificate-data") if cert else "",
        client_key_pem=_pem(key, "client-key-data") if key else "",
        tls_server_name=str(cluster.get("tls-server-name") or ""),
    )
