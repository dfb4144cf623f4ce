"""Build the sandbox's Eureka server (``server/``: one Spring Boot class and its pom.xml) with Maven.

The jar lands in ``<cache>/eureka/<hash of the sources>/eureka-server.jar`` (``OPSPORTAL_CACHE``, default
``~/.cache/opsportal``): an edited source is a new build, and worktrees with different sources never
overwrite each other's jars. A current jar is reused. Maven reads Maven Central through ``~/.m2``; a
cold build downloads about 60 MB of dependencies (84 s measured), a warm one takes about 12 s.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from sandbox import maven
from sandbox.maven import BuildError, Progress

SOURCES = Path(__file__).resolve().parent / "server"
JAR_NAME = "eureka-server.jar"
HOW_TO_BUILD = "build it with `make eureka-server` (or `.venv/bin/python -m sandbox.eureka build`)"


def cache_dir() -> Path:
    return maven.cache_dir("eureka")


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


def ensure_jar(progress: Progress | None = None) -> Path:
    """Build the jar unless the current sources' one exists; return its path."""
    return maven.ensure_built(
        name="eureka",
        product=jar_path(),
        ready=jar_ready,
        fill=_build,
        built=lambda jar: f"[eureka] built {jar}",
        how_to_build=HOW_TO_BUILD,
        progress=progress,
    )


def _build(staging: Path, progress: Progress) -> None:
    # Maven writes target/ next to the pom: the sources are built in a copy that only the jar outlives.
    work = staging / "src"
    shutil.copytree(SOURCES, work, ignore=shutil.ignore_patterns("target"))
    maven.run_mvn(
        ["package", "-DskipTests"], cwd=work, progress=progress, tag="eureka", how_to_build=HOW_TO_BUILD
    )
    built = work / "target" / JAR_NAME
    if not built.is_file():
        raise BuildError(f"Maven finished but {built} is missing; {HOW_TO_BUILD} after checking the pom")
    built.rename(staging / JAR_NAME)
    shutil.rmtree(work)


def main() -> int:
    return maven.main(ensure_jar, "Eureka server")
