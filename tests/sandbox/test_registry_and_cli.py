"""The real registry launcher, and the three `python -m sandbox.* serve` entry points."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import gitlab
import jenkins
import pytest
import requests

from sandbox.procs import free_port
from sandbox.registry import RegistryServer, find_binary
from tests.fixtures.standins import DEMO_REPOS, REPO_ROOT, require, require_tools

pytestmark = pytest.mark.standins


def _push_blob(registry: RegistryServer, name: str, data: bytes) -> str:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    start = requests.post(f"{registry.url}/v2/{name}/blobs/uploads/", timeout=10)
    assert start.status_code == 202
    location = start.headers["Location"]
    upload_url = location if location.startswith("http") else f"{registry.url}{location}"
    put = requests.put(
        upload_url,
        params={"digest": digest},
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    assert put.status_code == 201
    return digest


def test_registry_serves_v2_and_deletes(registry_server: RegistryServer) -> None:
    version = requests.get(f"{registry_server.url}/v2/", timeout=5)
    assert version.status_code == 200
    assert version.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    missing = requests.get(f"{registry_server.url}/v2/nothing/manifests/v1", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN")

    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    config_digest = _push_blob(registry_server, "seed/app", config.encode())
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [],
        }
    ).encode()
    put = requests.put(
        f"{registry_server.url}/v2/seed/app/manifests/v1",
        data=manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        timeout=10,
    )
    assert put.status_code == 201
    digest = put.headers["Docker-Content-Digest"]
    assert digest == f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    deleted = requests.delete(f"{registry_server.url}/v2/seed/app/manifests/{digest}", timeout=10)
    assert deleted.status_code == 202  # only with storage.delete.enabled


def _serve(args: list[str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (tmp_path / "cli.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _wait_http(url: str, **kwargs: object) -> requests.Response:
    deadline = time.monotonic() + 20
    while True:
        try:
            return requests.get(url, timeout=2, **kwargs)  # type: ignore[arg-type]
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_gitlab_cli_serves_imported_project(tmp_path: Path) -> None:
    require_tools("git")
    port = free_port()
    args = ["sandbox.gitlab", "serve", "--root", str(tmp_path / "gl"), "--port", str(port), "--token", "t0k"]
    args += ["--import", f"demo/go-hello={DEMO_REPOS / 'go-hello'}"]
    for _ in _serve(args, tmp_path):
        _wait_http(f"http://127.0.0.1:{port}/api/v4/version", headers={"PRIVATE-TOKEN": "t0k"})
        gl = gitlab.Gitlab(f"http://127.0.0.1:{port}", private_token="t0k")
        assert gl.projects.get("demo/go-hello").default_branch == "main"


def test_jenkins_cli_serves(tmp_path: Path) -> None:
    port = free_port()
    args = ["sandbox.jenkins", "serve", "--root", str(tmp_path / "j"), "--port", str(port)]
    for _ in _serve([*args, "--user", "u", "--token", "t"], tmp_path):
        _wait_http(f"http://127.0.0.1:{port}/")
        assert jenkins.Jenkins(f"http://127.0.0.1:{port}", "u", "t").get_whoami()["id"] == "u"


def test_registry_cli_serves(tmp_path: Path) -> None:
    require(find_binary() is not None, "docker-registry (apt-get install docker-registry)")
    port = free_port()
    for _ in _serve(
        ["sandbox.registry", "serve", "--root", str(tmp_path / "r"), "--port", str(port)], tmp_path
    ):
        assert _wait_http(f"http://127.0.0.1:{port}/v2/").status_code == 200


def test_sandbox_pipeline_keeps_its_ports_across_restarts(tmp_path: Path, monkeypatch, caplog) -> None:
    """`make run` restarted: the registry (where builds in flight push) and the stand-ins answer on the
    same addresses as before, with what they held; a port still taken by someone else is given up."""
    from sandbox import pipeline as sandbox_pipeline

    require(find_binary() is not None, "docker-registry (apt-get install docker-registry)")
    first = sandbox_pipeline.SandboxPipeline(tmp_path / "sandbox").start()
    try:
        ports = first.ports()
        settings = first.settings()
        digest = _push_blob(first.registry, "demo/kept", b"layer bytes")
    finally:
        first.stop()

    second = sandbox_pipeline.SandboxPipeline(tmp_path / "sandbox").start()
    try:
        assert second.ports() == ports
        assert second.settings()["REGISTRY_HOST"] == settings["REGISTRY_HOST"]
        assert second.settings()["JENKINS_URL"] == settings["JENKINS_URL"]
        kept = requests.head(f"{second.registry.url}/v2/demo/kept/blobs/{digest}", timeout=10)
        assert kept.status_code == 200
    finally:
        second.stop()

    monkeypatch.setattr(sandbox_pipeline, "PORT_RELEASE_WAIT_SECONDS", 0.5)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", ports["registry"]))
        squatter.listen()
        third = sandbox_pipeline.SandboxPipeline(tmp_path / "sandbox").start()
        try:
            assert third.registry.port != ports["registry"]
            assert third.ports()["jenkins"] == ports["jenkins"]
            assert f"port {ports['registry']} is still taken" in caplog.text
        finally:
            third.stop()
