"""Build a sandbox stand-in with Maven into ``<OPSPORTAL_CACHE>/<name>/<key>/`` (Kafka and Eureka do).

``key`` is a hash of what the build reads, so an edited input is a new build and worktrees with different
inputs never overwrite each other's output. Builds of one name take a flock (a second ``make`` waits for the
first and reuses its output), fill a staging directory beside the target and move it in whole (a killed build
never leaves a half-filled directory that would look current), and relay Maven's output as progress.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from sandbox.procs import run_relaying

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """A build that cannot finish; the message says why and what to run once the cause is fixed."""


def cache_dir(name: str) -> Path:
    return Path(os.environ.get("OPSPORTAL_CACHE") or Path.home() / ".cache" / "opsportal") / name


def find_java() -> str | None:
    return shutil.which("java")


def print_progress(message: str) -> None:
    print(message, flush=True)


def ensure_built(
    *,
    name: str,
    product: Path,
    ready: Callable[[], bool],
    fill: Callable[[Path, Progress], None],
    built: Callable[[Path], str],
    how_to_build: str,
    progress: Progress | None,
) -> Path:
    """Return ``product`` (``<cache>/<name>/<key>/<something>``), building it unless ``ready()``.

    ``fill(staging, progress)`` builds into an empty staging directory that must then hold
    ``product.name``; the staging directory becomes ``<key>/`` in whole. ``built(product)`` is the line
    shown after a build."""
    progress = progress or print_progress
    cache = cache_dir(name)
    target = product.parent
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready():
            progress(f"[{name}] {product} is current")
            return product
        for tool, package in (("mvn", "maven"), ("java", "openjdk-17-jdk-headless")):
            if shutil.which(tool) is None:
                raise BuildError(f"`{tool}` not found: apt-get install {package}, then {how_to_build}")
        staging = cache / f".building-{target.name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            fill(staging, progress)
            shutil.rmtree(target, ignore_errors=True)  # a leftover that was not current
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    progress(built(product))
    return product


def run_mvn(args: list[str], *, cwd: Path, progress: Progress, tag: str, how_to_build: str) -> None:
    """Run Maven, relaying its output (downloads included) so a cold build shows it is alive."""
    code, lines = run_relaying(
        ["mvn", "-B", "-Dstyle.color=never", *args], cwd=cwd, progress=progress, tag=tag
    )
    if code != 0:
        errors = [line for line in lines if line.startswith("[ERROR]")][:15] or lines[-30:]
        raise BuildError(
            f"mvn failed with exit code {code}:\n"
            + "\n".join(errors)
            + "\nMaven needs Maven Central (through ~/.m2/settings.xml's mirror, if any) and Java 17; "
            f"fix the cause above, then {how_to_build}."
        )


def main(ensure: Callable[[], Path], what: str) -> int:
    """The ``build`` command of a stand-in's CLI: 0 when built or current, 1 with the reason otherwise."""
    try:
        ensure()
    except BuildError as exc:
        print(f"{what} build failed: {exc}", flush=True)
        return 1
    return 0
