"""cgroup v1 groups for sandbox containers: memory limit and OOM count, CFS quota, shares, cpuacct.

A container's groups live at ``/sys/fs/cgroup/<controller>/<cgroup_parent>/<pod_uid>/<container>``, the
layout the pod network's leftover cleanup (sandbox/kube/podnet.py) removes from.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "cpuacct")
CFS_PERIOD_US = 100_000
# The kubelet's floor for cpu.shares (BestEffort pods) and for a quota (1 ms per period).
MIN_SHARES = 2
MIN_QUOTA_US = 1_000
UNLIMITED_ABOVE = 1 << 62

# mkdir -p of a parent and rmdir of an emptied one race between two containers of one pod.
_tree_lock = threading.Lock()


class CgroupError(Exception):
    pass


@dataclass(frozen=True)
class ContainerStats:
    cpu_ns: int  # cpuacct.usage: cumulative CPU time of every process the group ever held
    memory_usage_bytes: int  # memory.usage_in_bytes, page cache included
    working_set_bytes: int
    memory_limit_bytes: int  # 0: unlimited


def available() -> bool:
    """True when every controller the runtime needs is a mounted, writable v1 hierarchy."""
    return all((ROOT / c / "cgroup.procs").exists() and os.access(ROOT / c, os.W_OK) for c in CONTROLLERS)


def controller_dir(controller: str, relative: str) -> Path:
    return ROOT / controller / relative.strip("/")


def cpuset_dir(proc_cgroup: str | None = None) -> Path | None:
    """This process's cpuset group (containers stay in it), from /proc/self/cgroup; None without cpuset."""
    text = proc_cgroup if proc_cgroup is not None else Path("/proc/self/cgroup").read_text()
    for line in text.splitlines():
        _, controllers, path = line.split(":", 2)
        if "cpuset" in controllers.split(","):
            found = ROOT / controllers / path.strip("/")
            return found if found.is_dir() else None
    return None


def _read(path: Path) -> str:
    return path.read_text()


def _write(path: Path, value: str) -> None:
    with path.open("w") as fh:
        fh.write(value)


class ContainerCgroups:
    """The memory, cpu and cpuacct groups of one container instance."""

    def __init__(self, relative: str) -> None:
        self.relative = relative.strip("/")
        dirs: dict[str, Path] = {}
        for controller in CONTROLLERS:
            dirs[controller] = controller_dir(controller, self.relative)
        self.dirs = dirs
        self._last_oom_kills = 0
        self._last_usage = (0, 0)

    def distinct_dirs(self) -> list[Path]:
        # cpu and cpuacct are one directory where the two controllers are mounted together.
        seen: dict[str, Path] = {}
        for path in self.dirs.values():
            seen.setdefault(os.path.realpath(path.parent) + "/" + path.name, path)
        return list(seen.values())

    def create(
        self,
        *,
        memory_limit_bytes: int | None,
        cpu_limit_millicores: int | None,
        cpu_request_millicores: int | None,
    ) -> None:
        """Create fresh groups (removing a leftover of the same name first) and set the limits."""
        self.remove()
        with _tree_lock:
            for path in self.distinct_dirs():
                path.mkdir(parents=True, exist_ok=True)
        memory = self.dirs["memory"]
        if memory_limit_bytes is not None:
            _write(memory / "memory.limit_in_bytes", str(memory_limit_bytes))
            # Without swap accounting a limit could be dodged by swapping; the machine may have none.
            memsw = memory / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                _write(memsw, str(memory_limit_bytes))
        cpu = self.dirs["cpu"]
        _write(cpu / "cpu.cfs_period_us", str(CFS_PERIOD_US))
        if cpu_limit_millicores is not None:
            quota = max(MIN_QUOTA_US, cpu_limit_millicores * CFS_PERIOD_US // 1000)
            _write(cpu / "cpu.cfs_quota_us", str(quota))
        # An unset request defaults to the limit (as the API server does); neither means BestEffort.
        request = cpu_request_millicores if cpu_request_millicores is not None else cpu_limit_millicores
        shares = max(MIN_SHARES, request * 1024 // 1000) if request else MIN_SHARES
        _write(cpu / "cpu.shares", str(shares))

    def procs_files(self) -> list[Path]:
        return [path / "cgroup.procs" for path in self.distinct_dirs()]

    def pids(self) -> set[int]:
        return _pids(self.procs_files())

    def oom_kills(self) -> int:
        try:
            for line in _read(self.dirs["memory"] / "memory.oom_control").splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    self._last_oom_kills = int(value)
        except OSError:
            pass
        return self._last_oom_kills

    def usage(self) -> tuple[int, int]:
        """(cumulative CPU ns, memory working set bytes: usage minus inactive file cache)."""
        with contextlib.suppress(OSError, ValueError):
            stats = self.stats()
            self._last_usage = (stats.cpu_ns, stats.working_set_bytes)
        return self._last_usage

    def stats(self) -> ContainerStats:
        """The groups' counters now, read as cAdvisor reads them; OSError once the groups are gone."""
        memory = self.dirs["memory"]
        usage = int(_read(memory / "memory.usage_in_bytes"))
        inactive = 0
        for line in _read(memory / "memory.stat").splitlines():
            key, _, value = line.partition(" ")
            if key == "total_inactive_file":
                inactive = int(value)
                break
        limit = int(_read(memory / "memory.limit_in_bytes"))
        return ContainerStats(
            cpu_ns=int(_read(self.dirs["cpuacct"] / "cpuacct.usage")),
            memory_usage_bytes=usage,
            # cAdvisor's working set: usage less the inactive file cache the kernel reclaims first.
            working_set_bytes=max(0, usage - inactive),
            # v1 reports "no limit" as a page-rounded 2**63-1; cAdvisor exports anything above 2**62 as 0.
            memory_limit_bytes=0 if limit > UNLIMITED_ABOVE else limit,
        )

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process in the groups until they are empty (forks racing the kill included)."""
        _kill_until_empty(self.procs_files(), timeout)

    def remove(self, parents: int = 0) -> None:
        """Kill what is left, remove the groups, then up to ``parents`` emptied ancestors. Idempotent."""
        if not any(path.exists() for path in self.distinct_dirs()):
            return
        self.oom_kills()
        self.usage()
        self.kill_all()
        with _tree_lock:
            for path in self.distinct_dirs():
                _rmdir_retrying(path)
                parent = path.parent
                for _ in range(parents):
                    try:
                        parent.rmdir()
                    except OSError:
                        break  # still used by another container or pod
                    parent = parent.parent


def _pids(procs_files: list[Path]) -> set[int]:
    found: set[int] = set()
    for procs in procs_files:
        try:
            found.update(int(line) for line in _read(procs).split())
        except OSError:
            continue
    return found


def _kill_until_empty(procs_files: list[Path], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while pids := _pids(procs_files):
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise CgroupError(f"processes {sorted(pids)} survive SIGKILL in {procs_files[0].parent}")
        time.sleep(0.02)


def _rmdir_retrying(path: Path, timeout: float = 5.0) -> None:
    # A killed process leaves its group a moment after it is reaped; rmdir says EBUSY until then.
    deadline = time.monotonic() + timeout
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise CgroupError(f"cannot remove {path}: {exc}") from exc
            time.sleep(0.02)
