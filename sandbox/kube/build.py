"""Build the pinned control-plane binaries from the Go module proxy and cache them outside the repo.

Each component is rebuilt only when its pinned version differs from the one recorded in
``versions.json`` next to the binaries, or when one of its binaries is missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sandbox.procs import run_relaying

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.16"
KWOK_VERSION = "v0.8.0"

GO = os.environ.get("OPSPORTAL_GO") or shutil.which("go") or "/usr/local/go/bin/go"

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")

# Stage manifests shipped in the kwok module: without them kwok would not mark nodes Ready,
# renew node leases, or move pods to Running/Ready/Succeeded and finish their deletion.
KWOK_STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)

# Per-pod Exec and Logs objects let a pod get its own exec work directory and log content at runtime;
# the cluster-wide defaults stay in kwok's --config file.
KWOK_CRDS = ("kwok.x-k8s.io_execs.yaml", "kwok.x-k8s.io_logs.yaml")

Progress = Callable[[str], None]

# The container runtime's C helpers (sandbox/kube/agent/*.c): gcc builds them in seconds. They live in a
# directory named by a hash of their sources and flags, so an edited source is a new build, and checkouts
# with different sources (worktrees sharing this cache) never overwrite each other's helpers.
RUNTIME_SOURCES = Path(__file__).resolve().parent / "agent"
RUNTIME_HELPERS = {
    # Static: it runs inside the image's rootfs, which need not have a libc.
    "opsportal-init": ("init.c", ["-static", "-O2"]),
    "opsportal-enter": ("enter.c", ["-O2", "-DENTER_MAIN"]),
    "libopsportal-enter.so": ("enter.c", ["-O2", "-shared", "-fPIC"]),
}


class BuildError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("OPSPORTAL_CACHE") or Path.home() / ".cache" / "opsportal")


def bin_dir() -> Path:
    return cache_dir() / "bin"


def _components() -> dict[str, tuple[str, tuple[str, ...]]]:
    return {
        "etcd": (ETCD_VERSION, ("etcd",)),
        "kwok": (KWOK_VERSION, ("kwok", "kwok-stages.yaml", "kwok-crds.yaml")),
        "kubernetes": (KUBERNETES_VERSION, KUBE_COMMANDS),
    }


def binary_paths() -> dict[str, Path]:
    """Where every artefact lives once built (whether or not it exists yet)."""
    paths = {name: bin_dir() / name for _, names in _components().values() for name in names}
    paths.update(runtime_helper_paths())
    return paths


def runtime_helper_dir() -> Path:
    return bin_dir() / f"runtime-{_runtime_hash()[:16]}"


def runtime_helper_paths() -> dict[str, Path]:
    return {name: runtime_helper_dir() / name for name in RUNTIME_HELPERS}


def _runtime_hash() -> str:
    digest = hashlib.sha256()
    for name, (source, flags) in sorted(RUNTIME_HELPERS.items()):
        digest.update(f"{name}\0{source}\0{' '.join(flags)}\0".encode())
        digest.update((RUNTIME_SOURCES / source).read_bytes())
    return digest.hexdigest()


def runtime_helpers_ready() -> bool:
    """True when the C helpers of the current sources are built; never builds."""
    return all(path.exists() for path in runtime_helper_paths().values())


def ensure_runtime_helpers(progress: Progress | None = None) -> dict[str, Path]:
    """Compile the runtime's C helpers with gcc unless this version is built; return their paths."""
    progress = progress or _print_progress
    bin_dir().mkdir(parents=True, exist_ok=True)
    # Its own lock: a ten-minute Go build under build.lock must not hold up a few seconds of gcc.
    with (cache_dir() / "runtime-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if runtime_helpers_ready():
            return runtime_helper_paths()
        gcc = shutil.which("gcc") or shutil.which("cc")
        if not gcc:
            raise BuildError("gcc not found: the runtime helpers are C (apt-get install gcc libc6-dev)")
        target = runtime_helper_dir()
        # Built beside the target and renamed into place whole: never a half-built set under its name.
        staging = target.with_name(f".building-{target.name}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        try:
            for name, (source, flags) in RUNTIME_HELPERS.items():
                args = [
                    gcc,
                    *flags,
                    "-Wall",
                    "-Wextra",
                    "-o",
                    str(staging / name),
                    str(RUNTIME_SOURCES / source),
                ]
                progress(f"[runtime] $ {' '.join(args)}")
                done = subprocess.run(args, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise BuildError(f"runtime: {' '.join(args)} failed:\n{done.stderr.strip()}")
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return runtime_helper_paths()


def _read_stamp() -> dict[str, str]:
    try:
        return json.loads((bin_dir() / "versions.json").read_text())
    except (OSError, ValueError):
        return {}


def _write_stamp(stamp: dict[str, str]) -> None:
    path = bin_dir() / "versions.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _outdated() -> list[str]:
    stamp = _read_stamp()
    return [
        component
        for component, (version, names) in _components().items()
        if stamp.get(component) != version or not all((bin_dir() / n).exists() for n in names)
    ]


def binaries_ready() -> bool:
    """True when every pinned binary and the runtime's C helpers are built; never builds."""
    return not _outdated() and runtime_helpers_ready()


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # No VCS stamping: the wrapper modules are not repositories.
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-buildvcs=false")
    return env


def _run(args: list[str], cwd: Path, progress: Progress, tag: str) -> None:
    """Run a go command, relaying its output line by line so a long build shows it is alive."""
    code, lines = run_relaying(args, cwd=cwd, progress=progress, tag=tag, env=_go_env())
    if code != 0:
        tail = "\n".join(lines[-30:])
        raise BuildError(f"{tag}: {' '.join(args)} failed with exit code {code}\n{tail}")


def _fresh_module(name: str, version: str) -> Path:
    src = cache_dir() / "src" / f"{name}-{version}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    return src


def _go_mod_init(src: Path, module: str, progress: Progress, tag: str) -> None:
    _run([GO, "mod", "init", module], src, progress, tag)


def _download_json(module: str, src: Path, progress: Progress, tag: str) -> dict:
    out = subprocess.run(
        [GO, "mod", "download", "-json", module],
        cwd=src,
        env=_go_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise BuildError(f"{tag}: go mod download {module} failed:\n{out.stdout}\n{out.stderr}")
    info = json.loads(out.stdout)
    progress(f"[{tag}] downloaded {module} -> {info['Dir']}")
    return info


def staging_replacements(go_mod_text: str, staging_version: str) -> list[str]:
    """Turn k8s.io/kubernetes' ``k8s.io/x => ./staging/...`` replaces into published-module replaces.

    The list changes between minor releases, so it is derived from the downloaded go.mod.
    """
    modules = re.findall(r"^\s*(k8s\.io/[\w.\-/]+)\s+=>\s+\./staging/", go_mod_text, re.MULTILINE)
    if not modules:
        raise BuildError("no staging replace directives found in k8s.io/kubernetes go.mod")
    return [f"{m}={m}@{staging_version}" for m in sorted(set(modules))]


def _version_ldflags(version: str) -> str:
    major, minor = version.lstrip("v").split(".")[:2]
    build_date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": build_date,
    }
    # kwok and clients read /version; without these it reports v0.0.0 and feature gates misbehave.
    flags = ["-s", "-w"]
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {pkg}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def _build_kubernetes(out: Path, progress: Progress) -> None:
    tag = "kubernetes"
    version = KUBERNETES_VERSION
    staging_version = "v0." + version.lstrip("v").split(".", 1)[1]
    src = _fresh_module("kubernetes", version)
    _go_mod_init(src, "local/k8sbin", progress, tag)
    info = _download_json(f"k8s.io/kubernetes@{version}", src, progress, tag)
    replaces = staging_replacements(Path(info["GoMod"]).read_text(), staging_version)
    progress(f"[{tag}] {len(replaces)} staging modules replaced with published {staging_version}")
    _run([GO, "mod", "edit", *(f"-replace={r}" for r in replaces)], src, progress, tag)
    _run(
        [GO, "get", "-tool", *(f"k8s.io/kubernetes/cmd/{c}@{version}" for c in KUBE_COMMANDS)],
        src,
        progress,
        tag,
    )
    _run(
        [
            GO,
            "build",
            "-v",
            "-trimpath",
            "-tags=selinux,notest,grpcnotrace",
            f"-ldflags={_version_ldflags(version)}",
            "-o",
            str(out) + "/",
            *(f"k8s.io/kubernetes/cmd/{c}" for c in KUBE_COMMANDS),
        ],
        src,
        progress,
        tag,
    )


def _build_etcd(out: Path, progress: Progress) -> None:
    tag = "etcd"
    src = _fresh_module("etcd", ETCD_VERSION)
    _go_mod_init(src, "local/etcdbin", progress, tag)
    _run([GO, "get", "-tool", f"go.etcd.io/etcd/server/v3@{ETCD_VERSION}"], src, progress, tag)
    _run(
        [
            GO,
            "build",
            "-v",
            "-trimpath",
            "-ldflags=-s -w",
            "-o",
            str(out / "etcd"),
            "go.etcd.io/etcd/server/v3",
        ],
        src,
        progress,
        tag,
    )


def _build_kwok(out: Path, progress: Progress) -> None:
    tag = "kwok"
    src = _fresh_module("kwok", KWOK_VERSION)
    _go_mod_init(src, "local/kwokbin", progress, tag)
    info = _download_json(f"sigs.k8s.io/kwok@{KWOK_VERSION}", src, progress, tag)
    _run([GO, "get", "-tool", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"], src, progress, tag)
    ldflags = f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION.lstrip('v')}"
    _run(
        [
            GO,
            "build",
            "-v",
            "-trimpath",
            f"-ldflags={ldflags}",
            "-o",
            str(out / "kwok"),
            "sigs.k8s.io/kwok/cmd/kwok",
        ],
        src,
        progress,
        tag,
    )
    kustomize = Path(info["Dir"]) / "kustomize"
    _concat_yaml([kustomize / "stage" / s for s in KWOK_STAGES], out / "kwok-stages.yaml")
    _concat_yaml([kustomize / "crd" / "bases" / c for c in KWOK_CRDS], out / "kwok-crds.yaml")


def _concat_yaml(sources: list[Path], target: Path) -> None:
    docs = [src.read_text().strip().removeprefix("---").strip() for src in sources]
    target.write_text("\n---\n".join(docs) + "\n")


_BUILDERS = {"etcd": _build_etcd, "kwok": _build_kwok, "kubernetes": _build_kubernetes}


def _print_progress(message: str) -> None:
    print(message, flush=True)


def _install(staging: Path, component: str) -> None:
    """Move a finished component's files into place and record its version, in that order.

    The stamp entry was dropped before the build started, so a build interrupted at any point leaves
    the component outdated (rebuilt next time), never a half-written binary marked current.
    """
    for name in _components()[component][1]:
        (staging / name).replace(bin_dir() / name)
    stamp = _read_stamp()
    stamp[component] = _components()[component][0]
    _write_stamp(stamp)


def _forget(component: str) -> None:
    stamp = _read_stamp()
    if stamp.pop(component, None) is not None:
        _write_stamp(stamp)


def ensure_binaries(progress: Progress | None = None) -> dict[str, Path]:
    """Build whatever pinned component is missing or outdated; return the artefact paths.

    Only ``make cluster-binaries``, ``make cluster`` and ``make run`` call this: the test suite never
    builds (a cold build takes about ten minutes on two cores and would race the tests' deadlines).
    """
    progress = progress or _print_progress
    out = bin_dir()
    out.mkdir(parents=True, exist_ok=True)
    ensure_runtime_helpers(progress)
    with (cache_dir() / "build.lock").open("w") as lock:
        # Tests and `make run` may both decide to build; they would delete each other's wrapper modules.
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"another build holds {lock.name}; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        todo = _outdated()
        if not todo:
            progress(f"binaries up to date in {out}")
        if todo and not Path(GO).exists() and not shutil.which(GO):
            raise BuildError(f"go toolchain not found ({GO}); set OPSPORTAL_GO")
        for index, component in enumerate(todo, 1):
            version = _components()[component][0]
            progress(f"==> [{index}/{len(todo)}] building {component} {version}")
            started = time.monotonic()
            _forget(component)
            # Built beside the binaries (same filesystem, so the final move is a rename), never in place.
            staging = out / f".building-{component}"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir()
            try:
                _BUILDERS[component](staging, progress)
                _install(staging, component)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            progress(f"==> {component} {version} built in {time.monotonic() - started:.0f}s")
    return binary_paths()


def main() -> int:
    try:
        paths = ensure_binaries()
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    for name, path in sorted(paths.items()):
        print(f"{name}: {path}")
    return 0
