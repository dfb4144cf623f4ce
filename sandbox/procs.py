"""Small helpers for starting local server processes that never outlive the parent."""

import contextlib
import ctypes
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

CACHE_DIR = Path(os.environ.get("OPSPORTAL_CACHE", Path.home() / ".cache" / "opsportal"))


_PR_SET_PDEATHSIG = 1


def die_with_parent(
    parent_pid: int, signum: int = signal.SIGKILL, *, new_group: bool = False
) -> Callable[[], None]:
    """A ``preexec_fn``: the kernel sends ``signum`` to the child when ``parent_pid`` dies, even by SIGKILL.

    Linux only. The parent may already have died between fork and prctl, when the signal would never
    come, so the child then exits at once.
    """

    def preexec() -> None:
        if new_group:
            os.setpgrp()
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def spawn(
    args: list[str],
    *,
    log: Path | None = None,
    env: dict | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    detach: bool = False,
) -> subprocess.Popen:
    """Start a child in its own process group, tied to this process's life unless ``detach``."""
    if user is not None and os.geteuid() == 0:
        args = ["runuser", "-u", user, "--", *args]
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        args,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        preexec_fn=os.setsid if detach else die_with_parent(os.getpid(), signal.SIGTERM, new_group=True),
    )


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def stop_all(procs: list[subprocess.Popen], timeout: float = 15) -> None:
    """Stop several children at once: SIGTERM to all, one shared deadline, then SIGKILL. One by one,
    slow warm shutdowns (a Celery worker takes seconds) add up, and a parent that is itself killed
    while waiting leaves the rest orphaned."""
    running = [proc for proc in procs if proc.poll() is None]
    for proc in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in running:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on ``port`` now (TIME_WAIT leftovers do not count, as servers
    listen with SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_PORT = 10000


def _ephemeral_port_floor() -> int:
    try:
        return int(_EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing listens on now, chosen below the kernel's ephemeral range.

    A server is started some time after its port is chosen. A port from ``bind(0)`` lies in the ephemeral
    range, which the kernel also hands out as the source port of outgoing connections, and the suite makes
    thousands of those: CI once lost kube-apiserver to "bind: address already in use" that way. Ports
    below the range are never taken implicitly, so only another explicit bind can race us.
    """
    ceiling = _ephemeral_port_floor()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(_LOWEST_PORT, ceiling)
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # a crowded range: fall back to what the kernel offers
        sock.bind((host, 0))
        return sock.getsockname()[1]


def run_relaying(
    args: list[str], *, cwd: Path, progress: Callable[[str], None], tag: str, env: dict | None = None
) -> tuple[int, list[str]]:
    """Run a build command, relaying each output line as ``[tag] line`` so a long (cold) build shows it is
    alive; returns its exit code and its lines. An interrupted caller takes the command down with it, and
    a killed parent (SIGKILL cannot be caught) too, through the parent-death signal."""
    progress(f"[{tag}] $ {' '.join(args)}   (in {cwd})")
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=die_with_parent(os.getpid()),
    )
    lines: list[str] = []
    try:
        for line in proc.stdout or ():
            line = line.rstrip()
            lines.append(line)
            progress(f"[{tag}] {line}")
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.wait(), lines


def wait_for(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: subprocess.Popen | None = None,
    log: Path | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    tail = ""
    if log and log.exists():
        tail = "\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    if proc is not None and proc.poll() is not None:
        raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready.{tail}")
    raise RuntimeError(f"{what} did not become ready within {timeout:.0f}s.{tail}")


def http_ok(url: str, timeout: float = 1) -> bool:
    """Whether ``GET url`` answers 200 (a readiness probe of a loopback server)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback http
            return resp.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def redis_server_args(port: int) -> list[str]:
    """A throwaway redis-server on loopback: no snapshots, no append-only file."""
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]


class ReadyServer:
    """The lifecycle the sandbox's Prometheus and Alertmanager share: ``launch()`` spawns the process and
    waits for ``GET <url>/-/ready``; ``stop()`` ends its process group by pid; a context manager."""

    what = "server"
    error: type[RuntimeError] = RuntimeError
    ready_timeout = 30.0
    url: str
    process: subprocess.Popen | None = None

    def launch(self, args: list[str], *, log: Path, cwd: Path, wait: bool = True) -> None:
        """Spawn the process and (``wait``) wait until it is ready. Without waiting, call
        :meth:`await_ready` later, from any thread: the spawning thread must live as long as the process
        should (the kernel's parent-death signal follows the spawning thread, not the process)."""
        self.process = spawn(args, log=log, cwd=cwd)
        if wait:
            self.await_ready(log)

    def await_ready(self, log: Path) -> None:
        """Wait until the launched process is ready; ``error`` (and stopped) when it never answers."""
        try:
            wait_for(self.ready, timeout=self.ready_timeout, what=self.what, proc=self.process, log=log)
        except RuntimeError as exc:
            self.stop()
            raise self.error(str(exc)) from exc

    def ready(self) -> bool:
        return http_ok(f"{self.url}/-/ready")

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the process group by its pid (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None:
            return
        stop(self.process)
        self.process = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_until_signalled(server: ReadyServer, announce: Callable[[], None]) -> int:
    """A stand-in CLI's ``serve``: ``announce()`` (it starts the server and prints where it is), then run
    until SIGINT/SIGTERM; 1 with the server's error on stderr when it cannot start."""
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        announce()
        stopping.wait()
    except server.error as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        server.stop()
    return 0
