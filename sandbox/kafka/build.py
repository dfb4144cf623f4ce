"""Resolve the sandbox's Kafka broker (``libs-pom/pom.xml``: kafka_2.13, an slf4j binding) from Maven Central.

The jars land in ``<cache>/kafka/<hash of the pom>/libs/`` (``OPSPORTAL_CACHE``, default
``~/.cache/opsportal``): an edited pom is a new resolution, and worktrees with different poms never overwrite
each other's jars. A current set is reused. Maven reads Maven Central through ``~/.m2``; a cold resolution
downloads about 260 artifacts (45 jars, 43 MB kept) in 5–10 s here.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from sandbox.procs import run_relaying

POM = Path(__file__).resolve().parent / "libs-pom" / "pom.xml"
BROKER_JAR = "kafka_2.13-4.4.0.jar"  # present once the resolution succeeded
HOW_TO_BUILD = "build it with `make kafka-server` (or `.venv/bin/python -m sandbox.kafka build`)"

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("OPSPORTAL_CACHE") or Path.home() / ".cache" / "opsportal") / "kafka"


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


def _print_progress(message: str) -> None:
    print(message, flush=True)


def ensure_libs(progress: Progress | None = None) -> Path:
    """Resolve the jars unless the current pom's are there; return their directory."""
    progress = progress or _print_progress
    target = libs_dir()
    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `make` waits for the first resolution and reuses it
        if libs_ready():
            progress(f"[kafka] {target} is current")
            return target
        for tool, package in (("mvn", "maven"), ("java", "openjdk-17-jdk-headless")):
            if shutil.which(tool) is None:
                raise BuildError(f"`{tool}` not found: apt-get install {package}, then {HOW_TO_BUILD}")
        # Resolved into a staging directory beside the target and renamed in whole: a killed resolution
        # never leaves a half-filled libs/ that would look current.
        staging = cache_dir() / f".building-{target.parent.name}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        shutil.copyfile(POM, staging / "pom.xml")
        try:
            _mvn(
                [
                    "mvn",
                    "-B",
                    "-Dstyle.color=never",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={staging / 'libs'}",
                    "-DincludeScope=runtime",
                ],
                staging,
                progress,
            )
            if not (staging / "libs" / BROKER_JAR).is_file():
                raise BuildError(
                    f"Maven finished but {BROKER_JAR} is not among the jars; "
                    f"{HOW_TO_BUILD} after checking {POM}"
                )
            shutil.rmtree(target.parent, ignore_errors=True)  # a leftover without the broker jar
            staging.rename(target.parent)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    progress(f"[kafka] resolved {len(list(target.glob('*.jar')))} jars into {target}")
    return target


def _mvn(args: list[str], cwd: Path, progress: Progress) -> None:
    """Run Maven, relaying its output (downloads included) so a cold resolution shows it is alive."""
    code, lines = run_relaying(args, cwd=cwd, progress=progress, tag="kafka")
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
        ensure_libs()
    except BuildError as exc:
        print(f"Kafka build failed: {exc}", flush=True)
        return 1
    return 0
