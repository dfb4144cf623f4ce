"""The sandbox's pod network: what the CNI bridge plugin does, sealed inside the machine.

A cluster claims an index N (1..200) with an flock held for its lifetime, so parallel test sessions get
disjoint networks: pod CIDR ``10.0.N.0/24``, host bridge ``opsbr<N>`` holding the gateway ``10.0.N.1``.
Each running pod gets a network namespace ``opsp<N>-<uid[:10]>`` whose ``eth0`` is one end of a veth pair
enslaved to the bridge, with its pod IP and no default route, so a pod can reach only its /24.

Sealing: ``blackhole 10.0.0.0/16`` is installed before any pod exists and is never removed. While a
bridge is up its more specific /24 wins; every other address of the /16 (the Service CIDR included: there
is no kube-proxy) is dropped on the host instead of following the default route out of the machine.
No forwarding, NAT or iptables rule is involved: the host reaches pod IPs directly over the bridge.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

SEAL_CIDR = "10.0.0.0/16"
SERVICE_CIDR = "10.0.0.0/24"
LOCK_DIR = Path("/run/opsportal")
MAX_INDEX = 200
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_CONTROLLERS = ("memory", "cpu", "cpuacct")


class PodNetError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise PodNetError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def install_seal() -> None:
    """Blackhole the whole 10.0.0.0/16 (idempotent); bridges' /24s are more specific and win."""
    _ip("route", "replace", "blackhole", SEAL_CIDR)


def route_device(address: str) -> str | None:
    """The device the host would send ``address`` through, or None when it is blackholed/unreachable."""
    proc = _ip("-j", "route", "get", address, check=False)
    if proc.returncode != 0:
        return None
    routes = json.loads(proc.stdout or "[]")
    if not routes or routes[0].get("type") in ("blackhole", "unreachable", "prohibit"):
        return None
    return routes[0].get("dev")


def pods_supported() -> tuple[bool, str]:
    """Whether this machine can run real pods, and if not, why (shown on the Clusters page)."""
    if os.geteuid() != 0:
        return False, "not running as root (network namespaces and cgroups need root)"
    for tool, package in (("ip", "iproute2"), ("bwrap", "bubblewrap")):
        if shutil.which(tool) is None:
            return False, f"`{tool}` not found (install {package})"
    for controller in CGROUP_CONTROLLERS:
        path = CGROUP_ROOT / controller
        if not (path / "tasks").exists() or not os.access(path, os.W_OK):
            return False, f"cgroup v1 controller {controller} is not mounted writable at {path}"
    try:
        install_seal()
    except (PodNetError, OSError) as exc:
        return False, f"cannot install the sealing route for {SEAL_CIDR}: {exc}"
    return True, "pods run as real processes (root, bubblewrap, cgroup v1)"


@dataclass(frozen=True)
class PodNetns:
    name: str
    ip: str
    host_veth: str


class PodNetwork:
    """Index N's bridge and pod namespaces. :meth:`claim` takes the index; :meth:`attach` uses an index
    another process (the cluster launching the agent) already holds."""

    def __init__(self, index: int, lock_fd: int | None = None) -> None:
        if not 1 <= index <= MAX_INDEX:
            raise PodNetError(f"pod network index {index} out of range 1..{MAX_INDEX}")
        self.index = index
        self._lock_fd = lock_fd
        self._mutex = threading.Lock()
        self._used: dict[str, str] = {}  # pod uid -> ip

    # -- claiming --------------------------------------------------------------------------------------

    @classmethod
    def claim(cls, preferred: int = 1) -> PodNetwork:
        """Lock the first free index from ``preferred`` on and clean what a killed holder left behind."""
        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        order = [preferred, *(i for i in range(1, MAX_INDEX + 1) if i != preferred)]
        for index in order:
            fd = os.open(LOCK_DIR / f"podnet-{index}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            network = cls(index, lock_fd=fd)
            network.clean_leftovers()
            return network
        raise PodNetError(f"every pod network index 1..{MAX_INDEX} is in use")

    @classmethod
    def attach(cls, index: int) -> PodNetwork:
        return cls(index)

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    # -- names -----------------------------------------------------------------------------------------

    @property
    def cidr(self) -> str:
        return f"10.0.{self.index}.0/24"

    @property
    def gateway(self) -> str:
        return f"10.0.{self.index}.1"

    @property
    def bridge(self) -> str:
        return f"opsbr{self.index}"

    @property
    def netns_prefix(self) -> str:
        return f"opsp{self.index}-"

    @property
    def cgroup_parent(self) -> str:
        return f"opsportal/net{self.index}"

    def netns_name(self, pod_uid: str) -> str:
        return f"{self.netns_prefix}{pod_uid.replace('-', '')[:10]}"

    def _host_veth(self, pod_uid: str) -> str:
        return f"opv{self.index}-{pod_uid.replace('-', '')[:8]}"

    # -- bridge ----------------------------------------------------------------------------------------

    def setup(self) -> None:
        """Seal first, then bring up the bridge; refuses (raises) if the seal cannot be installed."""
        install_seal()
        if _ip("link", "show", self.bridge, check=False).returncode != 0:
            _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "replace", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def clean_leftovers(self) -> None:
        """Remove index N's namespaces, veths, bridge and cgroups that a killed previous holder left."""
        for name in list_netns():
            if name.startswith(self.netns_prefix):
                _kill_netns_processes(name)
                _ip("netns", "delete", name, check=False)
        for link in _links():
            if link.startswith(f"opv{self.index}-"):
                _ip("link", "delete", link, check=False)
        _ip("link", "delete", self.bridge, check=False)
        remove_cgroup_tree(self.cgroup_parent)
        with self._mutex:
            self._used.clear()

    def teardown(self) -> None:
        """Remove every pod namespace and the bridge (the blackhole stays), then release the index."""
        self.clean_leftovers()
        self.release()

    # -- pods ------------------------------------------------------------------------------------------

    def allocate(self, pod_uid: str) -> str:
        """The pod's IP (the same one on every call until released)."""
        with self._mutex:
            if pod_uid in self._used:
                return self._used[pod_uid]
            taken = set(self._used.values())
            for host in range(2, 255):
                ip = f"10.0.{self.index}.{host}"
                if ip not in taken:
                    self._used[pod_uid] = ip
                    return ip
        raise PodNetError(f"no free pod IP left in {self.cidr}")

    def add_pod(self, pod_uid: str) -> PodNetns:
        """A namespace with ``lo`` and ``eth0`` (pod IP/24 on a veth to the bridge); no default route."""
        name, veth = self.netns_name(pod_uid), self._host_veth(pod_uid)
        ip = self.allocate(pod_uid)
        try:
            if name in list_netns():  # a retry after a failure half-way
                _ip("netns", "delete", name, check=False)
            _ip("netns", "add", name)
            _ip("link", "delete", veth, check=False)
            # The peer is created directly inside the namespace, so naming it eth0 never meets the host's.
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name)
            _ip("link", "set", veth, "master", self.bridge, "up")
            _ip("-n", name, "addr", "add", f"{ip}/24", "dev", "eth0")
            _ip("-n", name, "link", "set", "eth0", "up")
            _ip("-n", name, "link", "set", "lo", "up")
        except PodNetError:
            self.remove_pod(pod_uid)
            raise
        return PodNetns(name=name, ip=ip, host_veth=veth)

    def remove_pod(self, pod_uid: str) -> None:
        name = self.netns_name(pod_uid)
        _kill_netns_processes(name)
        _ip("netns", "delete", name, check=False)  # deleting the namespace deletes both veth ends
        _ip("link", "delete", self._host_veth(pod_uid), check=False)
        with self._mutex:
            self._used.pop(pod_uid, None)

    def reserve(self, pod_uid: str, ip: str) -> None:
        """Keep ``ip`` for ``pod_uid`` (a simulated pod of a resumed cluster), if it is ours and free."""
        if not self.contains(ip) or ip == self.gateway:
            return
        with self._mutex:
            if pod_uid not in self._used and ip not in self._used.values():
                self._used[pod_uid] = ip

    def release_ip(self, pod_uid: str) -> None:
        with self._mutex:
            self._used.pop(pod_uid, None)

    def pod_ips(self) -> dict[str, str]:
        with self._mutex:
            return dict(self._used)

    def contains(self, address: str) -> bool:
        return ipaddress.ip_address(address) in ipaddress.ip_network(self.cidr)


def list_netns() -> list[str]:
    proc = _ip("netns", "list", check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def _links() -> list[str]:
    proc = _ip("-j", "link", "show", check=False)
    with contextlib.suppress(ValueError):
        return [link["ifname"] for link in json.loads(proc.stdout or "[]")]
    return []


def _kill_netns_processes(name: str) -> None:
    """SIGKILL processes still inside namespace ``name`` (a killed agent's containers)."""
    proc = _ip("netns", "pids", name, check=False)
    for pid in proc.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
            os.kill(int(pid), 9)


def remove_cgroup_tree(parent: str) -> None:
    """rmdir ``/sys/fs/cgroup/<ctl>/<parent>`` bottom-up, after killing any task left in it."""
    for controller in CGROUP_CONTROLLERS:
        root = CGROUP_ROOT / controller / parent
        if not root.is_dir():
            continue
        dirs = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
        for directory in [*dirs, root]:
            with contextlib.suppress(OSError):
                for pid in (directory / "tasks").read_text().split():
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(int(pid), 9)
            with contextlib.suppress(OSError):
                directory.rmdir()
