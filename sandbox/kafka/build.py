"""Resolve the sandbox's Kafka broker (``libs-pom/pom.xml``: kafka_2.13, an slf4j binding) from Maven Central.

The jars land in ``<cache>/kafka/<hash of the pom>/libs/`` (``OPSPORTAL_CACHE``, default
``~/.cache/opsportal``): an edited pom is a new resolution, and worktrees with different poms never overwrite
each other's jars. A current set is reused. Maven reads Maven Central through ``~/.m2``; a cold resolution
downloads about 260 artifacts (45 jars, 43 MB kept) in 5–10 s here.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from sandbox import maven
from sandbox.maven import BuildError, Progress

POM = Path(__file__).resolve().parent / "libs-pom" / "pom.xml"
BROKER_JAR = "kafka_2.13-4.4.0.jar"  # present once the resolution succeeded
HOW_TO_BUILD = "build it with `make kafka-server` (or `.venv/bin/python -m sandbox.kafka build`)"


def cache_dir() -> Path:
    return maven.cache_dir("kafka")


def pom_hash() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()[:16]


def libs_dir() -> Path:
    """Where the current pom's jars live once resolved (whether or not they exist yet)."""
    return cache_dir() / pom_hash() / "libs"


def libs_ready() -> bool:
    """True when the current pom's jars are resolved; never resolves."""
    return (libs_dir() / BROKER_JAR).is_file()


def classpath(libs: Path | None = None) -> str:
    """The JVM's ``-cp`` value (Java expands ``dir/*`` to the directory's jars itself)."""
    return f"{libs or libs_dir()}/*"


def ensure_libs(progress: Progress | None = None) -> Path:
    """Resolve the jars unless the current pom's are there; return their directory."""
    return maven.ensure_built(
        name="kafka",
        product=libs_dir(),
        ready=libs_ready,
        fill=_resolve,
        built=lambda libs: f"[kafka] resolved {len(list(libs.glob('*.jar')))} jars into {libs}",
        how_to_build=HOW_TO_BUILD,
        progress=progress,
    )


def _resolve(staging: Path, progress: Progress) -> None:
    shutil.copyfile(POM, staging / "pom.xml")
    maven.run_mvn(
        ["dependency:copy-dependencies", f"-DoutputDirectory={staging / 'libs'}", "-DincludeScope=runtime"],
        cwd=staging,
        progress=progress,
        tag="kafka",
        how_to_build=HOW_TO_BUILD,
    )
    if not (staging / "libs" / BROKER_JAR).is_file():
        raise BuildError(
            f"Maven finished but {BROKER_JAR} is not among the jars; {HOW_TO_BUILD} after checking {POM}"
        )


def main() -> int:
    return maven.main(ensure_libs, "Kafka")
