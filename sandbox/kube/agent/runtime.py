"""The sandbox's container runtime: what the pod agent calls to run a pod's containers for real.

A container is the image's unpacked rootfs (shared, read-only) run by bubblewrap in the pod's network
namespace, with its own pid, mount, uts, ipc and cgroup namespaces, inside cgroup v1 groups that enforce
its memory and CPU limits. bwrap runs as root without a user namespace (a user namespace would map the
container's uid back to root on the host), so the program bwrap starts is ``opsportal-init``, a static C
helper that drops to the container's uid/gid for real and then execs the command. bwrap's own init is
pid 1 of the namespace (a reaper, as with ``docker run --init``); the command is pid 2. stdout and stderr
go to a CRI-format log file through reader threads. See docs/sandbox.md, "Container runtime".
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sandbox.kube import build
from sandbox.kube.agent.cgroups import (
    CONTROLLERS,
    CgroupError,
    ContainerCgroups,
    ContainerStats,
    cpuset_dir,
)
from sandbox.kube.agent.images import ImageConfig, ImagePullError, ImageStore, is_sandbox_image

__all__ = [
    "Container",
    "ContainerSpec",
    "ImageConfig",
    "ImagePullError",
    "ImageStore",
    "StartError",
    "is_sandbox_image",
]

NETNS_DIR = Path("/run/netns")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# A longer line is split into partial ("P") records, as containerd does.
MAX_LOG_LINE = 16 * 1024
START_TIMEOUT_SECONDS = 30.0
# containerd's (and Docker's) default capabilities: a container running as root gets these, not all of a
# root bwrap's (which would include CAP_SYS_ADMIN, enough to leave the sandbox). init drops to another
# uid with CAP_SETUID/CAP_SETGID; that drop clears them all.
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1

# Loaded before any fork: the preexec function must not dlopen in the child.
_libc = ctypes.CDLL(None, use_errno=True)


class StartError(Exception):
    """The container could not be started (CreateContainerError); the message says why."""


@dataclass
class ContainerSpec:
    pod_uid: str
    namespace: str
    pod_name: str
    container_name: str
    rootfs: Path
    argv: list[str]
    env: dict[str, str]
    workdir: str
    user: str
    netns: str
    hostname: str
    memory_limit_bytes: int | None
    cpu_limit_millicores: int | None
    cpu_request_millicores: int | None
    log_path: Path
    cgroup_parent: str


def resolve_user(rootfs: Path, user: str) -> tuple[int, int]:
    """``uid, gid`` for ``user`` (``""``, ``name``, ``uid``, ``name:group``, ``uid:gid``) in the rootfs."""
    name, _, group = (user or "0").partition(":")
    uid = gid = None
    passwd = _table(rootfs / "etc" / "passwd")
    if name.isdigit():
        uid = int(name)
        # As runc does: a uid the image's passwd does not know runs with gid 0.
        gid = next((int(row[3]) for row in passwd if row[2] == name and row[3].isdigit()), 0)
    else:
        row = next((row for row in passwd if row[0] == name), None)
        if row is None:
            raise StartError(f"unable to find user {name}: no matching entries in passwd file")
        uid, gid = int(row[2]), int(row[3])
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = next((row for row in _table(rootfs / "etc" / "group") if row[0] == group), None)
            if found is None:
                raise StartError(f"unable to find group {group}: no matching entries in group file")
            gid = int(found[2])
    return uid, gid


def _table(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    rows = [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]
    return [row for row in rows if len(row) >= 4]


def _pod_ip(netns: str) -> str | None:
    done = subprocess.run(
        ["ip", "-n", netns, "-o", "-4", "addr", "show", "dev", "eth0"],
        capture_output=True,
        text=True,
        check=False,
    )
    for word, following in zip(done.stdout.split(), done.stdout.split()[1:], strict=False):
        if word == "inet":
            return following.split("/", 1)[0]
    return None


def _hosts_file(hostname: str, pod_ip: str | None) -> str:
    lines = [
        "# Kubernetes-managed hosts file (sandbox).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
    ]
    if pod_ip:
        lines.append(f"{pod_ip}\t{hostname}")
    return "\n".join(lines) + "\n"


def _resolv_conf(namespace: str) -> str:
    # There is no cluster DNS in the sandbox; without a nameserver line the resolver asks 127.0.0.1,
    # which is the pod's own loopback, so a lookup never leaves the pod.
    return f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"


def _memfd(name: str, content: str) -> int:
    fd = os.memfd_create(name, 0)
    os.write(fd, content.encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class _Launcher:
    """Starts every container from one long-lived thread.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process; containers
    started from the agent's short-lived worker threads would be killed when those threads finish.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[[], object], queue.Queue]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, job: Callable[[], object]) -> object:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="container-launcher", daemon=True)
                self._thread.start()
        answer: queue.Queue = queue.Queue(maxsize=1)
        self._jobs.put((job, answer))
        ok, value = answer.get()
        if not ok:
            raise value
        return value

    def _loop(self) -> None:
        while True:
            job, answer = self._jobs.get()
            try:
                answer.put((True, job()))
            except BaseException as exc:  # handed to the caller's thread
                answer.put((False, exc))


_launcher = _Launcher()


def cri_timestamp(ns: int) -> str:
    """RFC 3339 with nanoseconds in UTC, as containerd writes it: ``2026-11-30T10:58:22.264402954Z``."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{nanos:09d}Z"


class CriLog:
    """Appends CRI-format records ("<RFC3339Nano> <stream> F|P <text>") from several reader threads."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab", buffering=0)
        self._lock = threading.Lock()

    def write(self, stream: str, text: bytes, partial: bool) -> None:
        stamp = cri_timestamp(time.time_ns())
        record = f"{stamp} {stream} {'P' if partial else 'F'} ".encode() + text + b"\n"
        with self._lock:
            if not self._file.closed:
                self._file.write(record)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def pump_log(fd: int, stream: str, log: CriLog, sink: list[bytes] | None = None) -> None:
    """Copy a pipe into ``log`` as CRI records until end-of-file (and into ``sink`` when given)."""
    pending = b""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            if sink is not None:
                sink.append(chunk)
            pending = _write_lines(pending + chunk, stream, log)
    if pending:
        log.write(stream, pending, partial=False)


def _write_lines(pending: bytes, stream: str, log: CriLog) -> bytes:
    """Write every complete line (a long one as partial records); return the unfinished rest."""
    while True:
        newline = pending.find(b"\n", 0, MAX_LOG_LINE + 1)
        if newline >= 0:
            log.write(stream, pending[:newline], partial=False)
            pending = pending[newline + 1 :]
        elif len(pending) > MAX_LOG_LINE:
            log.write(stream, pending[:MAX_LOG_LINE], partial=True)
            pending = pending[MAX_LOG_LINE:]
        else:
            return pending


class Container:
    """One running container instance; ``start`` it, then poll, signal, kill and ``cleanup``."""

    pid: int

    def __init__(self, spec: ContainerSpec, cgroups: ContainerCgroups) -> None:
        self.spec = spec
        self.cgroups = cgroups
        self.pid = 0
        self.init_pid = 0  # bwrap's pid 1 of the container's pid namespace
        self._bwrap: subprocess.Popen | None = None
        self._readers: list[threading.Thread] = []
        self._log: CriLog | None = None
        self._exit_code: int | None = None

    # -- start ---------------------------------------------------------------------------------------

    @classmethod
    def start(cls, spec: ContainerSpec) -> Container:
        """Start the container's command; raises StartError when it cannot run (nothing is left behind)."""
        if not spec.argv:
            raise StartError("no command specified")
        if not (NETNS_DIR / spec.netns).exists():
            raise StartError(f"network namespace {spec.netns} does not exist")
        uid, gid = resolve_user(spec.rootfs, spec.user)
        helpers = build.ensure_runtime_helpers(progress=lambda _message: None)
        relative = "/".join(
            part.strip("/")
            for part in (spec.cgroup_parent, spec.pod_uid, spec.container_name)
            if part.strip("/")
        )
        container = cls(spec, ContainerCgroups(relative))
        try:
            container.cgroups.create(
                memory_limit_bytes=spec.memory_limit_bytes,
                cpu_limit_millicores=spec.cpu_limit_millicores,
                cpu_request_millicores=spec.cpu_request_millicores,
            )
            container._launch(helpers, uid, gid)
        except BaseException:
            container.kill()
            container.cleanup()
            raise
        return container

    def _bwrap_argv(self, init_fd: int, uid: int, gid: int, fds: dict[str, int]) -> list[str]:
        spec = self.spec
        argv = [
            "bwrap",
            "--die-with-parent",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup",
            # bwrap's own pid 1 stays (no --as-pid-1): it runs as root, so the parent-death SIGKILL of
            # --die-with-parent reaches it when bwrap dies, and with it the whole pid namespace goes. The
            # command, once it has dropped to its uid, would not get that signal: the kernel checks it
            # against bwrap's credentials, and bwrap has given up CAP_KILL by then.
            "--cap-drop",
            "ALL",
            *(arg for cap in DEFAULT_CAPABILITIES for arg in ("--cap-add", cap)),
            "--hostname",
            spec.hostname,
            "--ro-bind",
            str(spec.rootfs),
            "/",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",
            "--tmpfs",
            "/var/tmp",
            "--tmpfs",
            "/run",
            "--chmod",
            "1777",
            "/tmp",
            "--chmod",
            "1777",
            "/var/tmp",
            "--tmpfs",
            "/sys",
            # bwrap would create the parents of the cgroup mount points 0700: unreadable to the app.
            "--perms",
            "0755",
            "--dir",
            "/sys/fs",
            "--perms",
            "0755",
            "--dir",
            "/sys/fs/cgroup",
        ]
        # Each group is bound where the JVM's container support (and cgroup-aware tools) look; with the
        # cgroup namespace rooted at the container's groups, /proc/self/cgroup says "/" for them.
        for controller in CONTROLLERS:
            argv += ["--ro-bind", str(self.cgroups.dirs[controller]), f"/sys/fs/cgroup/{controller}"]
        # HotSpot ignores every cgroup v1 limit unless a cpuset hierarchy is mounted too; the container
        # keeps the agent's cpuset group, so that is what it sees.
        cpuset = cpuset_dir()
        if cpuset is not None:
            argv += ["--ro-bind", str(cpuset), "/sys/fs/cgroup/cpuset"]
        for name in ("hosts", "hostname", "resolv.conf"):
            # bwrap would make them 0600 root-owned: unreadable to a non-root container user.
            argv += ["--perms", "0644", "--ro-bind-data", str(fds[name]), f"/etc/{name}"]
        argv += ["--chdir", spec.workdir or "/", "--clearenv"]
        env = {"PATH": DEFAULT_PATH, "HOSTNAME": spec.hostname, **spec.env}
        for key, value in env.items():
            argv += ["--setenv", key, value]
        argv += ["--info-fd", str(fds["info"])]
        argv += [f"/proc/self/fd/{init_fd}", str(uid), str(gid), str(fds["status"]), str(fds["stderr"])]
        return argv + list(spec.argv)

    def _launch(self, helpers: dict[str, Path], uid: int, gid: int) -> None:
        spec = self.spec
        self._log = CriLog(spec.log_path)
        pod_ip = _pod_ip(spec.netns)
        init_fd = os.open(helpers["opsportal-init"], os.O_RDONLY | os.O_CLOEXEC)
        status_r, status_w = os.pipe()
        info_r, info_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        bwrap_err_r, bwrap_err_w = os.pipe()
        fds = {
            "status": status_w,
            "info": info_w,
            "stderr": err_w,
            "hosts": _memfd("hosts", _hosts_file(spec.hostname, pod_ip)),
            "hostname": _memfd("hostname", spec.hostname + "\n"),
            "resolv.conf": _memfd("resolv.conf", _resolv_conf(spec.namespace)),
        }
        child_fds = [init_fd, *fds.values()]  # the parent's copies are closed once bwrap has them
        procs_files = [str(path) for path in self.cgroups.procs_files()]
        netns_path = str(NETNS_DIR / spec.netns)
        agent_pid = os.getpid()

        def preexec() -> None:
            # Runs in the forked child before exec: die with the agent, join the groups (bwrap and all it
            # starts inherit them), enter the pod's network namespace. A failure is written to fd 2 (the
            # bwrap-errors pipe by now) and becomes the StartError's message.
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != agent_pid:
                os._exit(1)
            step = "joining the cgroups"
            try:
                pid = str(os.getpid()).encode()
                for procs in procs_files:
                    fd = os.open(procs, os.O_WRONLY)
                    os.write(fd, pid)
                    os.close(fd)
                step = f"entering the network namespace {spec.netns}"
                fd = os.open(netns_path, os.O_RDONLY)
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
                os.close(fd)
            except OSError as exc:
                os.write(2, f"{step}: {exc}".encode())
                os._exit(2)

        argv = self._bwrap_argv(init_fd, uid, gid, fds)
        try:
            self._bwrap = _launcher.run(
                lambda: subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out_w,
                    stderr=bwrap_err_w,
                    pass_fds=child_fds,
                    close_fds=True,
                    start_new_session=True,
                    preexec_fn=preexec,
                )
            )
        except (OSError, subprocess.SubprocessError) as exc:
            for fd in (status_r, info_r, out_r, err_r, bwrap_err_r, out_w, bwrap_err_w, *child_fds):
                os.close(fd)
            raise StartError(f"cannot run bwrap: {exc}") from exc
        for fd in (out_w, bwrap_err_w, *child_fds):
            os.close(fd)

        bwrap_errors: list[bytes] = []
        for fd, stream, sink in (
            (out_r, "stdout", None),
            (err_r, "stderr", None),
            (bwrap_err_r, "stderr", bwrap_errors),
        ):
            reader = threading.Thread(
                target=pump_log,
                args=(fd, stream, self._log, sink),
                name=f"log-{spec.pod_name}-{stream}",
                daemon=True,
            )
            reader.start()
            self._readers.append(reader)

        status = self._read_all(status_r)
        info = self._read_all(info_r)
        if status.startswith(b"R") and len(status) == 1:
            try:
                self.init_pid = int(json.loads(info)["child-pid"])
            except (ValueError, KeyError) as exc:
                raise StartError(f"bwrap reported no child pid: {info!r}") from exc
            # The helper that wrote "R" is the command now, pid 2 of the namespace: the init's only child.
            # A command that exits at once may be gone already: it started, and poll() has its code.
            children = Path(f"/proc/{self.init_pid}/task/{self.init_pid}/children")
            try:
                self.pid = int(children.read_text().split()[0])
            except (OSError, IndexError, ValueError):
                self.pid = self.init_pid
            return
        # The exec failed (message after "R"), or bwrap failed before running the helper (its stderr).
        try:
            self._bwrap.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._bwrap.kill()
            self._bwrap.wait()
        self._join_readers(2.0)
        if status.startswith(b"R"):
            message = status[1:].decode(errors="replace")
        else:
            message = b"".join(bwrap_errors).decode(errors="replace").strip() or (
                f"bwrap exited with code {self._bwrap.returncode}"
            )
        raise StartError(message)

    @staticmethod
    def _read_all(fd: int) -> bytes:
        """Everything written to a start-up pipe until its writers close it (bounded: bwrap may hang)."""
        chunks = []
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while (left := deadline - time.monotonic()) > 0:
                if not select.select([fd], [], [], left)[0]:
                    break
                chunk = pipe.read(4096)
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)

    # -- lifecycle -----------------------------------------------------------------------------------

    def poll(self) -> int | None:
        """The exit code once the command has exited (128+N for a signal N), else None."""
        if self._exit_code is not None:
            return self._exit_code
        if self._bwrap is None:
            return None
        code = self._bwrap.poll()
        if code is None:
            return None
        return self._finish(code)

    def wait(self, timeout: float) -> int | None:
        if self._exit_code is not None or self._bwrap is None:
            return self._exit_code
        try:
            code = self._bwrap.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self._finish(code)

    def _finish(self, code: int) -> int:
        # bwrap reports the command's status; a negative code means bwrap itself was signalled.
        self._exit_code = 128 - code if code < 0 else code
        self._join_readers(2.0)
        return self._exit_code

    def _join_readers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for reader in self._readers:
            reader.join(max(0.0, deadline - time.monotonic()))

    def signal(self, signum: int) -> None:
        if self.pid and self.poll() is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """SIGKILL every process of the container (the command, execs into it, bwrap) and reap bwrap."""
        for pid in (self.init_pid, self.pid):  # pid 1 first: the kernel kills its whole pid namespace
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.cgroups.kill_all()
        except CgroupError:
            pass
        if self._bwrap is not None:
            if self._bwrap.poll() is None:
                self._bwrap.kill()
            self.wait(10.0)

    @property
    def oom_killed(self) -> bool:
        return self.cgroups.oom_kills() > 0

    def usage(self) -> tuple[int, int]:
        return self.cgroups.usage()

    def stats(self) -> ContainerStats:
        """Counters for the cAdvisor series; OSError once the container's groups are removed."""
        return self.cgroups.stats()

    # -- entering ------------------------------------------------------------------------------------

    def enter_argv(self, argv: list[str]) -> list[str]:
        """Host argv that runs ``argv`` inside the container (its namespaces, groups, user, env, workdir)."""
        helper = build.runtime_helper_paths()["opsportal-enter"]
        return [str(helper), str(self.pid), *argv]

    def exec_env(self) -> dict[str, str]:
        """Env for kwok's Exec object: commands kwok starts then run inside this container."""
        library = build.runtime_helper_paths()["libopsportal-enter.so"]
        return {"LD_PRELOAD": str(library), "OPSPORTAL_ENTER_PID": str(self.pid)}

    def cleanup(self) -> None:
        """Kill whatever is left and remove the container's cgroups (and emptied parents). Idempotent."""
        if self._bwrap is not None and self._bwrap.poll() is None:
            self.kill()
        depth = len([p for p in self.spec.cgroup_parent.split("/") if p]) + 1
        self.cgroups.remove(parents=depth)
        self._join_readers(2.0)
        if self._log is not None:
            self._log.close()
