"""Image pulls for sandbox containers: skopeo copies an image by digest from the plain-HTTP sandbox
registry into an OCI layout, umoci unpacks it, and the rootfs is kept per digest and shared read-only by
every container of that image.

Disk layout under ``cache_dir``: ``<hex>/rootfs`` and ``<hex>/image.json`` (the parsed image config,
written last, so its presence marks a complete unpack); ``<hex>.lock`` serialises pulls of one digest
across threads and processes.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

PULL_TIMEOUT_SECONDS = 300.0
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# Mount points the runtime binds over; created in the (otherwise untouched) rootfs at unpack time so
# that bubblewrap never has to create anything in the read-only rootfs.
MOUNT_DIRS = ("proc", "dev", "sys", "tmp", "var/tmp", "run", "etc")
GENERATED_FILES = ("etc/hosts", "etc/hostname", "etc/resolv.conf")


class ImagePullError(Exception):
    """The image cannot be pulled or unpacked; the message is what the pod's status shows."""


@dataclass(frozen=True)
class ImageConfig:
    digest: str
    entrypoint: list[str]
    cmd: list[str]
    env: list[str]
    workdir: str
    user: str


def registry_of(image: str) -> str | None:
    """The registry host[:port] of an image reference, or None for a Docker Hub short name."""
    first, sep, _ = image.partition("/")
    if not sep:
        return None
    if "." in first or ":" in first or first == "localhost":
        return first
    return None


def _host_of(registry: str) -> str:
    return registry.split("://", 1)[-1].rstrip("/").split("/", 1)[0]


def is_sandbox_image(image: str, registries: Sequence[str]) -> bool:
    """True when the image's host:port is one of ``registries`` (``host:port`` or ``http://host:port``)."""
    host = registry_of(image)
    return host is not None and host in {_host_of(r) for r in registries}


def split_reference(image: str) -> tuple[str, str | None, str | None]:
    """``(repository with host, tag, digest)``; a reference with neither means tag ``latest``."""
    name, at, digest = image.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    if at:
        if not DIGEST.match(digest):
            raise ImagePullError(f'Failed to pull image "{image}": invalid digest "{digest}"')
        return name, tag, digest
    return name, tag or "latest", None


def _tool_message(stderr: str) -> str:
    """skopeo's/umoci's last error line, without the logrus decoration."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "no output"
    last = lines[-1]
    match = re.search(r'msg="((?:[^"\\]|\\.)*)"', last)
    if match:
        last = match.group(1).replace('\\"', '"')
    # skopeo wraps the registry's answer in what it was doing; the answer is the useful part.
    last = re.sub(r'^(Error parsing image name "[^"]*": |initializing source [^:]+(:[^:]+)*?: )', "", last)
    return last.strip()


def _run(args: list[str], image: str, what: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=PULL_TIMEOUT_SECONDS, check=False)
    except FileNotFoundError as exc:
        raise ImagePullError(f'Failed to pull image "{image}": {args[0]} is not installed') from exc
    except subprocess.TimeoutExpired as exc:
        raise ImagePullError(f'Failed to pull image "{image}": {what} timed out') from exc
    if done.returncode != 0:
        raise ImagePullError(f'Failed to pull image "{image}": {_tool_message(done.stderr)}')
    return done.stdout


def _blob(layout: Path, digest: str) -> dict:
    algorithm, _, hexdigest = digest.partition(":")
    return json.loads((layout / "blobs" / algorithm / hexdigest).read_text())


def _read_config(layout: Path, digest: str) -> ImageConfig:
    index = json.loads((layout / "index.json").read_text())
    manifest = _blob(layout, index["manifests"][0]["digest"])
    config = _blob(layout, manifest["config"]["digest"]).get("config") or {}
    return ImageConfig(
        digest=digest,
        entrypoint=list(config.get("Entrypoint") or []),
        cmd=list(config.get("Cmd") or []),
        env=list(config.get("Env") or []),
        workdir=config.get("WorkingDir") or "/",
        user=config.get("User") or "",
    )


def prepare_rootfs(rootfs: Path) -> None:
    """Create the mount points the runtime binds over (an image may lack /proc, /sys, /run ...)."""
    for name in MOUNT_DIRS:
        path = rootfs / name
        if not path.exists() and not path.is_symlink():
            path.mkdir(parents=True, exist_ok=True)
    for name in GENERATED_FILES:
        path = rootfs / name
        # A symlink (resolv.conf -> ../run/...) or anything else would be followed out of the rootfs.
        if path.is_symlink() or (path.exists() and not path.is_file()):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        path.touch(exist_ok=True)


class ImageStore:
    """Pulled and unpacked images, one read-only rootfs per manifest digest; safe to share across threads."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        self._cache: dict[str, tuple[Path, ImageConfig]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.pulls = 0  # skopeo copies made by this store (a cache hit makes none)

    def _lock(self, digest: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(digest, threading.Lock())

    def resolve_digest(self, image: str) -> tuple[str, str]:
        """``(repository with host, manifest digest)``; asks the registry only for a tag reference."""
        repository, _, digest = split_reference(image)
        if digest:
            return repository, digest
        out = _run(
            ["skopeo", "inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{image}"],
            image,
            "resolving the tag",
        )
        return repository, out.strip()

    def pull(self, image: str) -> tuple[Path, ImageConfig]:
        """The image's shared rootfs and config, pulled and unpacked on first use of its digest."""
        repository, digest = self.resolve_digest(image)
        with self._guard:
            hit = self._cache.get(digest)
        if hit:
            return hit
        with self._lock(digest):
            with self._guard:
                hit = self._cache.get(digest)
            if hit:
                return hit
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            hexdigest = digest.split(":", 1)[1]
            target = self.cache_dir / hexdigest
            with (self.cache_dir / f"{hexdigest}.lock").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # another process (a second agent, a test) may be pulling it
                if not (target / "image.json").exists():
                    self._pull_into(image, f"{repository}@{digest}", digest, target)
                config = ImageConfig(**json.loads((target / "image.json").read_text()))
            result = (target / "rootfs", config)
            with self._guard:
                self._cache[digest] = result
            return result

    def _pull_into(self, image: str, by_digest: str, digest: str, target: Path) -> None:
        shutil.rmtree(target, ignore_errors=True)
        work = Path(tempfile.mkdtemp(prefix=".pull-", dir=self.cache_dir))
        try:
            layout = work / "oci"
            self.pulls += 1
            _run(
                [
                    "skopeo",
                    "copy",
                    "--quiet",
                    "--src-tls-verify=false",
                    f"docker://{by_digest}",
                    f"oci:{layout}:image",
                ],
                image,
                "copying the image",
            )
            config = _read_config(layout, digest)
            bundle = work / "bundle"
            _run(["umoci", "unpack", "--image", f"{layout}:image", str(bundle)], image, "unpacking")
            prepare_rootfs(bundle / "rootfs")
            bundle.rename(target)
            (target / "image.json").write_text(json.dumps(asdict(config)))
        finally:
            shutil.rmtree(work, ignore_errors=True)
