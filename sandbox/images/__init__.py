"""The sandbox's base images, made from this machine's own Debian packages, pushed to the sandbox registry.

Nothing can be pulled here, so each language's generic Dockerfile (deploys/recipes.py) starts FROM one of
these:

- ``busybox``: static busybox (Go's binaries are static; also the default for other languages);
- ``java``: a jlink'ed JRE 17 in /opt/java plus the shared libraries it links and busybox (the java recipe's
  Dockerfile brings its own ENTRYPOINT ``java -jar``);
- ``python``: the CPython this sandbox runs on (``sys.base_prefix``, or ``SANDBOX_PYTHON_HOME``) in
  /opt/python, its standard library without tests/IDLE/tkinter/byte code, pip, and the libraries it links,
  plus busybox (the python recipe installs the service's wheels with that pip in a build stage);
- ``php``: /usr/bin/php with its ini files, extensions and libraries plus busybox, whose CMD serves
  /var/www/html with PHP's built-in server on $PORT (default 8080), as php-apache's base does with Apache.

One more image is no base: ``prestop-helper`` holds only /opt/opsportal/bin/http-post, the preStop hook's
static HTTP client compiled from deploys/prestop/http-post.c, which the generic Dockerfiles copy in a first
stage (``OPSPORTAL_PRESTOP_HELPER_IMAGE``).

``rootfs.sh`` assembles each root filesystem; here it is packed as an OCI image with umoci into a cache
(``SANDBOX_IMAGE_CACHE``, default ~/.cache/opsportal/images) under a tag that hashes the recipe and every
input file (path, size, mtime), so an image is rebuilt only when an input changes. ``ensure_base_images``
then copies them into a registry with skopeo (unchanged blobs are not sent again) and returns the value of
``OPSPORTAL_BASE_IMAGES``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ROOTFS_SH = Path(__file__).resolve().parent / "rootfs.sh"
REPOSITORY_PREFIX = "sandbox/base"
BUILD_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class BaseImage:
    name: str
    env: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    workdir: str = ""
    description: str = ""


IMAGES = {
    image.name: image
    for image in (
        BaseImage("busybox", env=("PATH=/bin",), cmd=("/bin/sh",), description="static busybox"),
        BaseImage(
            "java",
            env=("PATH=/opt/java/bin:/bin", "JAVA_HOME=/opt/java"),
            description="jlink'ed JRE 17 + busybox",
        ),
        BaseImage(
            "php",
            env=("PATH=/usr/bin:/bin",),
            # The Deployment sets no PORT (only containerPort, default 8080); a pod that sets PORT moves it.
            cmd=("/bin/sh", "-c", 'exec php -q -S "0.0.0.0:${PORT:-8080}" -t /var/www/html'),
            workdir="/var/www/html",
            description="PHP CLI (built-in server) + busybox",
        ),
        BaseImage(
            "python",
            env=("PATH=/opt/python/bin:/bin",),
            cmd=("python3",),
            description="CPython (the sandbox's own) + pip + busybox",
        ),
        BaseImage("prestop-helper", env=(), description="the preStop hook's static HTTP client"),
    )
}
PRESTOP_HELPER = "prestop-helper"
# Which image each language's Dockerfile starts from; "default" is the portal's fallback for the others.
LANGUAGE_IMAGES = {"default": "busybox", "go": "busybox", "java": "java", "php": "php", "python": "python"}


class BaseImageError(RuntimeError):
    pass


def cache_dir() -> Path:
    configured = os.environ.get("SANDBOX_IMAGE_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "opsportal" / "images"


def _rootfs_env() -> dict[str, str]:
    # The python image copies the interpreter the sandbox itself runs on, whatever python3 is on PATH.
    return {"SANDBOX_PYTHON_HOME": sys.base_prefix, **os.environ}


def _run(argv: list[str], what: str) -> str:
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_SECONDS,
            check=False,
            env=_rootfs_env(),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BaseImageError(f"{what}: {exc}") from exc
    if done.returncode != 0:
        raise BaseImageError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout)[-2000:]}")
    return done.stdout


def input_key(name: str) -> str:
    """A hash of everything the image is made from: the recipe, its config, and each input file's identity."""
    image = IMAGES[name]
    digest = hashlib.sha256()
    digest.update(ROOTFS_SH.read_bytes())
    digest.update(json.dumps([image.env, image.cmd, image.workdir]).encode())
    for line in _run(["bash", str(ROOTFS_SH), "inputs", name], f"listing the inputs of {name}").splitlines():
        path = Path(line)
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Parallel test sessions share the cache: one builds an image, the others wait for it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _tags(layout: Path) -> set[str]:
    try:
        index = json.loads((layout / "index.json").read_text())
    except (OSError, ValueError):
        return set()
    return {
        m.get("annotations", {}).get("org.opencontainers.image.ref.name", "")
        for m in index.get("manifests", [])
    }


def build(name: str) -> tuple[Path, str]:
    """The cached OCI layout holding image ``name`` and its current tag, built now if an input changed."""
    if name not in IMAGES:
        raise BaseImageError(f"unknown base image {name!r}")
    image = IMAGES[name]
    key = input_key(name)
    layout = cache_dir() / name
    with _locked(cache_dir() / f"{name}.lock"):
        if key in _tags(layout):
            return layout, key
        logger.info("building the sandbox base image %s (%s)", name, key)
        with tempfile.TemporaryDirectory(prefix=f"base-{name}-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            _run(["bash", str(ROOTFS_SH), "build", name, str(rootfs)], f"assembling the {name} image")
            fresh = Path(tmp) / "layout"
            ref = f"{fresh}:{key}"
            _run(["umoci", "init", "--layout", str(fresh)], "umoci init")
            _run(["umoci", "new", "--image", ref], "umoci new")
            _run(["umoci", "insert", "--image", ref, str(rootfs), "/"], f"packing the {name} image")
            config = ["umoci", "config", "--image", ref, "--os", "linux", "--architecture", "amd64"]
            config += ["--config.label", f"org.opencontainers.image.title=sandbox-{name}"]
            config += ["--config.label", f"org.opencontainers.image.description={image.description}"]
            for variable in image.env:
                config += ["--config.env", variable]
            for arg in image.cmd:
                config += ["--config.cmd", arg]
            if image.workdir:
                config += ["--config.workingdir", image.workdir]
            _run(config, f"configuring the {name} image")
            _run(["umoci", "gc", "--layout", str(fresh)], "umoci gc")
            # Replaced whole, so a reader never sees a half-written layout and old tags' blobs go too.
            if layout.exists():
                shutil.rmtree(layout)
            shutil.move(str(fresh), layout)
        return layout, key


def image_ref(registry_host: str, name: str, key: str) -> str:
    return f"{registry_host}/{REPOSITORY_PREFIX}/{name}:{key}"


def push(registry_host: str, name: str) -> str:
    """Build (or reuse) image ``name`` and copy it into the registry at ``registry_host``; its reference."""
    layout, key = build(name)
    ref = image_ref(registry_host, name, key)
    # The sandbox registry is plain HTTP on loopback.
    _run(
        ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci:{layout}:{key}", f"docker://{ref}"],
        f"pushing {ref}",
    )
    return ref


def ensure_base_images(registry_host: str) -> dict[str, str]:
    """Push every base image to the registry; the mapping for OPSPORTAL_BASE_IMAGES (language -> image).

    busybox is required. A language whose tools this machine lacks (no JDK, no php) is left out with a
    warning, so its builds fall back to the default image and fail visibly instead of the sandbox."""
    refs: dict[str, str] = {}
    for name in (name for name in IMAGES if name in LANGUAGE_IMAGES.values()):
        try:
            refs[name] = push(registry_host, name)
        except BaseImageError:
            if name == "busybox":
                raise
            logger.warning("sandbox base image %s not available", name, exc_info=True)
    return {language: refs[name] for language, name in LANGUAGE_IMAGES.items() if name in refs}


def ensure_prestop_helper(registry_host: str) -> str:
    """Push the preStop helper image; the value of OPSPORTAL_PRESTOP_HELPER_IMAGE, or "" without gcc (the
    builds then fail saying so, and images built before keep the hook's wget/curl fallback)."""
    try:
        return push(registry_host, PRESTOP_HELPER)
    except BaseImageError:
        logger.warning("sandbox image %s not available", PRESTOP_HELPER, exc_info=True)
        return ""
