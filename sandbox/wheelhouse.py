"""The sandbox's wheelhouse: the wheels of the Python services the sandbox builds, fetched before any build.

No build may reach PyPI, so ``make wheelhouse`` (a prerequisite of ``make test`` and ``make run``) runs
``pip wheel -r <requirements>`` once per requirements file into
``<cache>/wheels/<hash of the file>/`` (``OPSPORTAL_CACHE``, default ``~/.cache/opsportal``), with the
interpreter the sandbox runs on, so the wheels fit the python base image (sandbox/images), which is a copy
of that interpreter. ``pip wheel`` rather than ``pip download``: a requirement that only has sources is
built here once, so the build agent never needs build tools or an index. A current wheelhouse is reused;
an edited file is a new one. The sandbox's Jenkins agent gets ``PIP_NO_INDEX=1`` and ``PIP_FIND_LINKS``
naming the wheelhouses (``agent_env``). pytest never downloads: a missing wheelhouse fails the tests that
need it under CI=true, with the command to run.

    python -m sandbox.wheelhouse build [REQUIREMENTS...]   # default: REQUIREMENTS below
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from sandbox.procs import run_relaying

REPO_ROOT = Path(__file__).resolve().parent.parent
# The Python services the sandbox builds from this repository: the log proxy.
REQUIREMENTS = (REPO_ROOT / "logproxy" / "requirements.txt",)
HOW_TO_BUILD = "fetch it with `make wheelhouse` (or `.venv/bin/python -m sandbox.wheelhouse build`)"
COMPLETE = ".complete"  # written last: a wheelhouse without it is half fetched

Progress = Callable[[str], None]


class WheelhouseError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("OPSPORTAL_CACHE") or Path.home() / ".cache" / "opsportal") / "wheels"


def requirements_files() -> list[Path]:
    return [path for path in REQUIREMENTS if path.is_file()]


def path_for(requirements: Path) -> Path:
    """Where the wheelhouse of ``requirements`` lives once fetched (whether or not it exists yet)."""
    return cache_dir() / hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]


def ready(requirements: Path) -> bool:
    """True when the wheelhouse of the current ``requirements`` is complete; never fetches."""
    return (path_for(requirements) / COMPLETE).is_file()


def agent_env(files: Iterable[Path] | None = None) -> dict[str, str]:
    """What the sandbox's build agent gets: pip reads no index, only the complete wheelhouses. Without one a
    build whose requirements are not there fails ("No matching distribution"), and never reaches PyPI."""
    houses = [str(path_for(f)) for f in (requirements_files() if files is None else files) if ready(f)]
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": " ".join(houses), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def _print_progress(message: str) -> None:
    print(message, flush=True)


def ensure(requirements: Path, progress: Progress | None = None) -> Path:
    """Fetch the wheels of ``requirements`` unless its wheelhouse is complete; return the wheelhouse."""
    progress = progress or _print_progress
    target = path_for(requirements)
    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / "fetch.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second `make` waits for the first and reuses its wheels
        if (target / COMPLETE).is_file():
            progress(f"[wheelhouse] {target} is current ({requirements})")
            return target
        staging = cache_dir() / f".fetching-{target.name}"
        shutil.rmtree(staging, ignore_errors=True)
        argv = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--progress-bar", "off"]
        argv += ["--wheel-dir", str(staging), "--requirement", str(requirements)]
        try:
            # The user's pip configuration applies (a company mirror in PIP_INDEX_URL, say).
            code, lines = run_relaying(argv, cwd=REPO_ROOT, progress=progress, tag="wheelhouse")
            if code != 0:
                raise WheelhouseError(
                    f"pip wheel failed with exit code {code}:\n"
                    + "\n".join(lines[-20:])
                    + f"\npip needs PyPI (or PIP_INDEX_URL); fix the cause above, then {HOW_TO_BUILD}."
                )
            (staging / COMPLETE).write_text(requirements.read_text())
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    wheels = sorted(p.name for p in target.glob("*.whl"))
    progress(f"[wheelhouse] {target}: {len(wheels)} wheels ({', '.join(wheels)})")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.wheelhouse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="fetch the wheels of each requirements file (no-op when current)")
    build.add_argument("requirements", nargs="*", type=Path)
    args = parser.parse_args(argv)
    files = [p.resolve() for p in args.requirements] or requirements_files()
    try:
        for requirements in files:
            ensure(requirements)
    except (WheelhouseError, OSError) as exc:
        print(f"Wheelhouse failed: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
