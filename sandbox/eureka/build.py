"""Build the sandbox's Eureka server (``server/``: one Spring Boot class and its pom.xml) with Maven.

The jar lands in ``<cache>/eureka/<hash of the sources>/eureka-server.jar`` (``OPSPORTAL_CACHE``, default
``~/.cache/opsportal``): an edited source is a new build, and worktrees with different sources never
overwrite each other's jars. A current jar is reused. Maven reads Maven Central through ``~/.m2``; a
cold build downloads about 60 MB of dependencies (84 s measured), a warm one takes about 12 s.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from sandbox.procs import run_relaying

SOURCES = Path(__file__).resolve().parent / "server"
JAR_NAME = "eureka-server.jar"
HOW_TO_BUILD = "build it with `make eureka-server` (or `.venv/bin/python -m sandbox.eureka build`)"

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("OPSPORTAL_CACHE") or Path.home() / ".cache" / "opsportal") / "eureka"


def _source_files() -> list[Path]:
    return sorted(
        p for p in SOURCES.rglob("*") if p.is_file() and "target" not in p.relative_to(SOURCES).parts
    )


def source_hash() -> str:
    digest = hashlib.sha256()
    for path in _source_files():
        digest.update(str(path.relative_to(SOURCES)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def jar_path() -> Path:
    """Where the jar of the current sources lives once built (whether or not it exists yet)."""
    return cache_dir() / source_hash() / JAR_NAME


def jar_ready() -> bool:
    """True when the jar of the current sources is built; never builds."""
    return jar_path().is_file()


def _print_progress(message: str) -> None:
    print(message, flush=True)


def ensure_jar(progress: Progress | None = None) -> Path:
    """Build the jar unless the current sources' one exists; return its path."""
    progress = progress or _print_progress
    target = jar_path()
    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `make` waits for the first build and reuses it
        if target.is_file():
            progress(f"[eureka] {target} is current")
            return target
        for tool, package in (("mvn", "maven"), ("java", "openjdk-17-jdk-headless")):
            if shutil.which(tool) is None:
                raise BuildError(f"`{tool}` not found: apt-get install {package}, then {HOW_TO_BUILD}")
        # Built in a copy beside the target (Maven writes target/ next to the pom) and moved in whole.
        staging = cache_dir() / f".building-{target.parent.name}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(SOURCES, staging, ignore=shutil.ignore_patterns("target"))
        try:
            _mvn(["mvn", "-B", "-Dstyle.color=never", "package", "-DskipTests"], staging, progress)
            built = staging / "target" / JAR_NAME
            if not built.is_file():
                raise BuildError(
                    f"Maven finished but {built} is missing; {HOW_TO_BUILD} after checking the pom"
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            shutil.copyfile(built, tmp)
            tmp.replace(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    progress(f"[eureka] built {target}")
    return target


def _mvn(args: list[str], cwd: Path, progress: Progress) -> None:
    """Run Maven, relaying its output (downloads included) so a cold build shows it is alive."""
    code, lines = run_relaying(args, cwd=cwd, progress=progress, tag="eureka")
    if code != 0:
        errors = [line for line in lines if line.startswith("[ERROR]")][:15] or lines[-30:]
        raise BuildError(
            f"mvn failed with exit code {code}:\n"
            + "\n".join(errors)
            + "\nMaven needs Maven Central (through ~/.m2/settings.xml's mirror, if any) and Java 17; "
            f"fix the cause above, then {HOW_TO_BUILD}."
        )


def main() -> int:
    try:
        ensure_jar()
    except BuildError as exc:
        print(f"Eureka server build failed: {exc}", flush=True)
        return 1
    return 0
