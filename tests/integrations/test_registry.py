"""RegistryClient against the real CNCF distribution registry (Debian's docker-registry), seeded over HTTP."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
import secrets
import subprocess
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from integrations.errors import Invalid, NotFound, Unauthorized, Unreachable
from integrations.registry import Digest, RegistryClient, image_ref
from sandbox.registry import RegistryServer, find_binary
from tests.fixtures.standins import BUILD_IMAGE_SH, DEMO_REPOS, require, require_tools

pytestmark = pytest.mark.standins

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


# --- seeding (contract 9.4), with plain requests ------------------------------------------------------


def _push_blob(base_url: str, name: str, data: bytes, headers: dict | None = None) -> str:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    start = requests.post(f"{base_url}/v2/{name}/blobs/uploads/", headers=headers, timeout=10)
    assert start.status_code == 202, start.text
    upload = requests.put(
        requests.compat.urljoin(base_url, start.headers["Location"]),  # relative Location
        params={"digest": digest},
        data=data,
        headers={**(headers or {}), "Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert upload.status_code == 201, upload.text
    return digest


def _push_manifest(base_url: str, name: str, ref: str, body: bytes, media_type: str, headers=None) -> str:
    put = requests.put(
        f"{base_url}/v2/{name}/manifests/{ref}",
        data=body,
        headers={**(headers or {}), "Content-Type": media_type},
        timeout=10,
    )
    assert put.status_code == 201, put.text
    return put.headers["Docker-Content-Digest"]


def push_minimal_image(base_url: str, name: str, tag: str, headers: dict | None = None) -> tuple[str, bytes]:
    """The smallest usable OCI image; returns (digest, manifest bytes)."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "tag": tag}
    ).encode()
    layer = f"layer of {name}:{tag}".encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _push_blob(base_url, name, config, headers),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _push_blob(base_url, name, layer, headers),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return _push_manifest(base_url, name, tag, manifest, OCI_MANIFEST, headers), manifest


@pytest.fixture
def client(registry_server: RegistryServer) -> RegistryClient:
    return RegistryClient(registry_server.url, timeout=(2, 10))


# --- tests --------------------------------------------------------------------------------------------


def test_resolve_returns_the_pushed_oci_manifest_digest(
    client: RegistryClient, registry_server: RegistryServer
) -> None:
    digest, manifest = push_minimal_image(registry_server.url, "demo/app", "v1.0.0")
    assert digest == f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    assert client.resolve("demo/app", "v1.0.0") == Digest(digest, OCI_MANIFEST, len(manifest))
    assert client.resolve("demo/app", digest).digest == digest  # by digest too
    assert image_ref(registry_server.host, "demo/app", digest) == f"{registry_server.host}/demo/app@{digest}"


def test_resolve_an_oci_index_pins_the_index_not_a_child(
    client: RegistryClient, registry_server: RegistryServer
) -> None:
    # Without the OCI index type in Accept the registry would answer a misleading 404 (contract 9.2).
    child, child_manifest = push_minimal_image(registry_server.url, "demo/multi", "amd64-only")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": child,
                    "size": len(child_manifest),
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()
    index_digest = _push_manifest(registry_server.url, "demo/multi", "v2", index, OCI_INDEX)
    resolved = client.resolve("demo/multi", "v2")
    assert resolved.digest == index_digest != child
    assert resolved.media_type == OCI_INDEX
    narrow = requests.head(
        f"{registry_server.url}/v2/demo/multi/manifests/v2",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=5,
    )
    assert narrow.status_code == 404  # the trap the client avoids


def test_missing_tag_and_repository_are_not_found(
    client: RegistryClient, registry_server: RegistryServer
) -> None:
    push_minimal_image(registry_server.url, "demo/app", "v1.0.0")
    with pytest.raises(NotFound) as excinfo:
        client.resolve("demo/app", "v9.9.9")
    assert excinfo.value.permanent and excinfo.value.details["code"] == "MANIFEST_UNKNOWN"
    with pytest.raises(NotFound) as excinfo:
        client.resolve("demo/nothing", "v1")
    assert excinfo.value.details["code"] in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN")
    with pytest.raises(NotFound) as excinfo:
        client.tags("demo/nothing")
    assert excinfo.value.details["code"] == "NAME_UNKNOWN"


def test_exists(client: RegistryClient, registry_server: RegistryServer) -> None:
    digest, _ = push_minimal_image(registry_server.url, "demo/app", "v1.0.0")
    assert client.exists("demo/app", "v1.0.0") is True
    assert client.exists("demo/app", digest) is True
    assert client.exists("demo/app", "v2") is False
    assert client.exists("demo/app", "sha256:" + "0" * 64) is False


def test_tags_lists_every_tag(client: RegistryClient, registry_server: RegistryServer) -> None:
    # distribution 2.8 ignores ``n``, sends no Link header and no lexical order, so this covers the
    # single-page path only; following a relative ``Link: rel="next"`` (distribution 3.x) is not
    # exercised by a real server here.
    for tag in ("v1", "v2", "v3", "v4", "v5"):
        push_minimal_image(registry_server.url, "demo/app", tag)
    assert client.tags("demo/app", page_size=2) == ["v1", "v2", "v3", "v4", "v5"]


def test_names_are_validated_before_any_request(client: RegistryClient) -> None:
    for repository, ref in [("Demo/App", "v1"), ("demo/../x", "v1"), ("demo/app", "v1/../../x"), ("a", "")]:
        with pytest.raises(Invalid):
            client.resolve(repository, ref)
    with pytest.raises(Invalid):
        image_ref("host:5000", "demo/app", "latest")


def test_stopped_registry_is_unreachable_and_transient(registry_server: RegistryServer) -> None:
    client = RegistryClient(registry_server.url, timeout=(2, 5))
    registry_server.stop()
    with pytest.raises(Unreachable) as excinfo:
        client.resolve("demo/app", "v1.0.0")
    assert excinfo.value.permanent is False


def test_resolve_an_image_built_by_the_standin_build_script(
    registry_server: RegistryServer, tmp_path: Path
) -> None:
    require_tools("buildah", "flock", "ldd")
    require(Path("/bin/busybox").is_file(), "busybox-static (/bin/busybox)")
    image = f"{registry_server.host}/demo/static-site:v1"
    done = subprocess.run(
        ["bash", str(BUILD_IMAGE_SH), str(DEMO_REPOS / "static-site"), image],
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            "HOME": str(tmp_path),
            "SANDBOX_BUILDAH_ROOT": str(tmp_path / "buildah"),
        },
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    pushed = re.search(rf"^pushed {re.escape(image)}@(sha256:[0-9a-f]{{64}})$", done.stdout, re.MULTILINE)
    assert pushed, done.stdout[-2000:]
    resolved = RegistryClient(registry_server.url).resolve("demo/static-site", "v1")
    assert resolved.digest == pushed.group(1)


# --- authentication: the same real registry with htpasswd, and with token auth ---------------------------

REGISTRY_USER, REGISTRY_PASSWORD = "portal", "s3cret-pass"
SERVICE, ISSUER = "sandbox-registry", "sandbox-token-issuer"


class _AuthRegistry(RegistryServer):
    """The real registry with an ``auth`` section; readiness is a 401 on ``/v2/`` instead of a 200."""

    def __init__(self, root: Path, auth: dict) -> None:
        super().__init__(root)
        self.auth = auth

    def write_config(self) -> Path:
        path = super().write_config()
        config = yaml.safe_load(path.read_text())
        config["auth"] = self.auth
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, (
                self.root / "registry.log"
            ).read_text()
            try:
                if requests.get(f"{self.url}/v2/", timeout=1).status_code == 401:
                    return
            except requests.exceptions.ConnectionError:
                pass
            time.sleep(0.1)
        raise AssertionError("the registry with auth did not start")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _TokenServer:
    """A docker token service: Basic credentials in, an ES256 JWT with an x5c header out."""

    def __init__(self, root: Path) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sandbox token signer")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = root / "token-signer.pem"
        root.mkdir(parents=True, exist_ok=True)
        self.bundle.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                return

            def do_GET(self) -> None:
                query = dict(parse_qsl(urlsplit(self.path).query))
                expected = (
                    "Basic " + base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
                )
                server.requests.append({"query": query, "auth": self.headers.get("Authorization")})
                if self.headers.get("Authorization") != expected:
                    body, status = b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}', 401
                else:
                    body, status = json.dumps({"token": server.mint(query.get("scope", ""))}).encode(), 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.realm = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"

    def mint(self, scope: str) -> str:
        access = []
        if scope:
            kind, name, actions = scope.split(":")
            access = [{"type": kind, "name": name, "actions": actions.split(",")}]
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": ISSUER,
            "sub": REGISTRY_USER,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def token_registry(tmp_path: Path):
    require(find_binary() is not None, "docker-registry (apt-get install docker-registry)")
    tokens = _TokenServer(tmp_path / "tokens")
    auth = {
        "token": {
            "realm": tokens.realm,
            "service": SERVICE,
            "issuer": ISSUER,
            "rootcertbundle": str(tokens.bundle),
        }
    }
    registry = _AuthRegistry(tmp_path / "registry-token", auth)
    registry.start()
    yield registry, tokens
    registry.stop()
    tokens.stop()


@pytest.fixture
def htpasswd_registry(tmp_path: Path):
    require(find_binary() is not None, "docker-registry (apt-get install docker-registry)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # libxcrypt does bcrypt, the only hash the registry's htpasswd accepts

        hashed = crypt.crypt(REGISTRY_PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))  # noqa: S324 - bcrypt
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"{REGISTRY_USER}:{hashed}\n")
    registry = _AuthRegistry(
        tmp_path / "registry-basic", {"htpasswd": {"realm": "sandbox", "path": str(htpasswd)}}
    )
    registry.start()
    yield registry
    registry.stop()


def test_bearer_token_flow(token_registry) -> None:
    registry, tokens = token_registry
    push_token = tokens.mint("repository:demo/app:pull,push")
    digest, _ = push_minimal_image(registry.url, "demo/app", "v1", {"Authorization": f"Bearer {push_token}"})
    tokens.requests.clear()

    client = RegistryClient(registry.url, REGISTRY_USER, REGISTRY_PASSWORD, timeout=(2, 10))
    assert client.resolve("demo/app", "v1").digest == digest
    assert client.exists("demo/app", digest) and client.tags("demo/app") == ["v1"]
    assert len(tokens.requests) == 1  # one token for the scope, cached for the later calls
    assert tokens.requests[0]["query"] == {"service": SERVICE, "scope": "repository:demo/app:pull"}

    with pytest.raises(Unauthorized) as excinfo:
        RegistryClient(registry.url, REGISTRY_USER, "wrong").resolve("demo/app", "v1")
    assert excinfo.value.permanent and excinfo.value.status == 401


def test_basic_auth(htpasswd_registry: RegistryServer) -> None:
    basic = {
        "Authorization": "Basic " + base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    }
    digest, _ = push_minimal_image(htpasswd_registry.url, "demo/app", "v1", basic)
    client = RegistryClient(htpasswd_registry.url, REGISTRY_USER, REGISTRY_PASSWORD, timeout=(2, 10))
    assert client.resolve("demo/app", "v1").digest == digest
    for anonymous_or_wrong in (
        RegistryClient(htpasswd_registry.url),
        RegistryClient(htpasswd_registry.url, REGISTRY_USER, "x"),
    ):
        with pytest.raises(Unauthorized) as excinfo:
            anonymous_or_wrong.resolve("demo/app", "v1")
        assert excinfo.value.permanent
