"""The sandbox's container runtime on real processes: a busybox image pulled from a real registry, run by
bubblewrap in a network namespace behind a bridge this module makes, inside real cgroup v1 limits.

Nothing here sends a packet outside the machine: the pod network is 10.0.<N>.0/24 on a bridge made here,
10.0.0.0/16 is blackholed, and `ip route get` must name the bridge before the one TCP connection is made.
"""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clusters.services.terminal import HANG_UP_SCRIPT, MARKER_VARIABLE, shell_command
from sandbox.kube import build
from sandbox.kube.agent import cgroups
from sandbox.kube.agent.images import prepare_rootfs
from sandbox.kube.agent.runtime import (
    MAX_LOG_LINE,
    Container,
    ContainerSpec,
    CriLog,
    ImagePullError,
    ImageStore,
    StartError,
    is_sandbox_image,
    pump_log,
    resolve_user,
)
from sandbox.registry import RegistryServer, find_binary
from tests.fixtures.ci import unavailable
from tests.fixtures.standins import BUILD_IMAGE_SH
from tests.polling import until

POD_CIDR_SEAL = "10.0.0.0/16"
# Indexes far above the ones LocalCluster claims (1 upwards), each held with a flock like theirs.
TEST_INDEXES = range(240, 255)
CRI_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (F|P) (.*)$")
MiB = 1024 * 1024

DOCKERFILE = """\
FROM localhost/sandbox/busybox:latest
COPY srv /srv
USER 65534
WORKDIR /srv
ENV GREETING=hello-from-the-image
CMD ["httpd", "-f", "-p", "8080", "-h", "/srv"]
"""


def _require_machine() -> None:
    if os.geteuid() != 0:
        unavailable("the container runtime needs root (network namespaces, cgroups)")
    for tool in ("ip", "bwrap", "skopeo", "umoci", "buildah", "gcc"):
        if not shutil.which(tool):
            unavailable(f"required tool missing: {tool} (apt-get install it)")
    if find_binary() is None:
        unavailable("required tool missing: docker-registry (apt-get install docker-registry)")
    if not cgroups.available():
        unavailable("cgroup v1 memory, cpu and cpuacct controllers are not mounted writable")


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def route_dev(address: str) -> str | None:
    """The device `ip route get` sends ``address`` through, or None when the route is refused."""
    done = subprocess.run(["ip", "route", "get", address], capture_output=True, text=True, check=False)
    match = re.search(r"\bdev (\S+)", done.stdout)
    return match.group(1) if done.returncode == 0 and match else None


@dataclass
class PodNet:
    index: int
    bridge: str
    namespaces: list[str]
    next_host: Iterator[int]

    def address(self, host: int) -> str:
        return f"10.0.{self.index}.{host}"

    def add_pod(self, host: int) -> str:
        """A netns with eth0 = 10.0.<index>.<host>/24 on the bridge, lo up and no default route."""
        netns = f"rtns{self.index}-{host}"
        host_end, peer = f"rtv{self.index}-{host}", f"rtp{self.index}-{host}"
        _ip("netns", "add", netns)
        self.namespaces.append(netns)
        _ip("link", "add", host_end, "type", "veth", "peer", "name", peer)
        _ip("link", "set", host_end, "master", self.bridge, "up")
        _ip("link", "set", peer, "netns", netns)
        _ip("-n", netns, "link", "set", peer, "name", "eth0")
        _ip("-n", netns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
        _ip("-n", netns, "link", "set", "eth0", "up")
        _ip("-n", netns, "link", "set", "lo", "up")
        return netns


@pytest.fixture(scope="module")
def podnet() -> Iterator[PodNet]:
    _require_machine()
    lock_dir = Path("/run/opsportal")
    lock_dir.mkdir(parents=True, exist_ok=True)
    for index in TEST_INDEXES:
        lock = (lock_dir / f"runtime-test-{index}.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            lock.close()
    else:
        pytest.fail("no free test pod-network index")
    net = PodNet(index=index, bridge=f"rtbr{index}", namespaces=[], next_host=itertools.count(2))
    # Leftovers of a killed earlier run with this index.
    subprocess.run(["ip", "link", "del", net.bridge], capture_output=True, check=False)
    for name in _ip("netns", "list").split():
        if name.startswith(f"rtns{index}-"):
            subprocess.run(["ip", "netns", "del", name], check=False)
    # The seal first: with no bridge yet, the pod range goes nowhere (and never out through eth0).
    _ip("route", "replace", "blackhole", POD_CIDR_SEAL)
    assert route_dev(net.address(2)) is None
    _ip("link", "add", net.bridge, "type", "bridge")
    try:
        _ip("addr", "add", f"{net.address(1)}/24", "dev", net.bridge)
        _ip("link", "set", net.bridge, "up")
        yield net
    finally:
        for netns in net.namespaces:
            subprocess.run(["ip", "netns", "del", netns], check=False)
        subprocess.run(["ip", "link", "del", net.bridge], check=False)
        lock.close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, podnet: PodNet) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path_factory.mktemp("registry"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def image_ref(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> str:
    """``host:port/rt-busybox@sha256:…``: busybox, an httpd document root, user 65534, workdir /srv."""
    context = tmp_path_factory.mktemp("context")
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "srv").mkdir()
    (context / "srv" / "index.html").write_text("served from the container\n")
    (context / "srv" / "image-marker").write_text("this file exists only in the image\n")
    done = subprocess.run(
        ["bash", str(BUILD_IMAGE_SH), str(context), f"{registry.host}/rt-busybox:v1"],
        capture_output=True,
        text=True,
        env={**os.environ, "SANDBOX_BUILDAH_ROOT": str(tmp_path_factory.mktemp("buildah"))},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    pushed = done.stdout.strip().splitlines()[-1]
    assert pushed.startswith("pushed ")
    return pushed.removeprefix("pushed ").replace(":v1@", "@")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ImageStore:
    return ImageStore(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def pulled(store: ImageStore, image_ref: str):
    return store.pull(image_ref)


@pytest.fixture
def make_spec(tmp_path: Path, podnet: PodNet, pulled, request: pytest.FixtureRequest):
    rootfs, config = pulled
    started: list[Container] = []

    def make(**overrides) -> ContainerSpec:
        fields = dict(
            pod_uid=f"uid-{request.node.name[:40]}",
            namespace="demo",
            pod_name="web-0",
            container_name="app",
            rootfs=rootfs,
            argv=config.entrypoint + config.cmd,
            env={"GREETING": "hello-from-the-pod"},
            workdir=config.workdir,
            user=config.user,
            netns="",
            hostname="web-0",
            memory_limit_bytes=64 * MiB,
            cpu_limit_millicores=500,
            cpu_request_millicores=100,
            log_path=tmp_path / "pods" / "demo" / "web-0" / "app.log",
            cgroup_parent=f"opsportal-test/rt{podnet.index}",
        )
        fields.update(overrides)
        if not fields["netns"]:
            fields["netns"] = podnet.add_pod(next(podnet.next_host))
        return ContainerSpec(**fields)

    def start(spec: ContainerSpec) -> Container:
        container = Container.start(spec)
        started.append(container)
        return container

    make.start = start
    yield make
    for container in started:
        container.kill()
        container.cleanup()


def log_records(path: Path) -> list[tuple[str, str, str]]:
    records = []
    for line in path.read_text().splitlines():
        match = CRI_LINE.match(line)
        assert match, f"not a CRI log line: {line!r}"
        records.append(match.groups())
    return records


def run_inside(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False, **kwargs)


# -- images ---------------------------------------------------------------------------------------------


def test_users_resolve_against_the_image_passwd_and_group(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\napps:x:1001:\nstaff:x:50:\n")
    assert resolve_user(tmp_path, "") == (0, 0)
    assert resolve_user(tmp_path, "app") == (1000, 1001)
    assert resolve_user(tmp_path, "1000") == (1000, 1001)
    assert resolve_user(tmp_path, "4242") == (4242, 0)  # unknown to passwd: gid 0, as runc does
    assert resolve_user(tmp_path, "app:staff") == (1000, 50)
    assert resolve_user(tmp_path, "4242:4343") == (4242, 4343)
    with pytest.raises(StartError, match="unable to find user nobody"):
        resolve_user(tmp_path, "nobody")
    with pytest.raises(StartError, match="unable to find group wheel"):
        resolve_user(tmp_path, "app:wheel")


def test_is_sandbox_image_matches_the_registry_host_and_port() -> None:
    registries = ["127.0.0.1:5000", "http://localhost:5001/"]
    assert is_sandbox_image("127.0.0.1:5000/go-hello:v1", registries)
    assert is_sandbox_image("127.0.0.1:5000/team/go-hello@sha256:" + "a" * 64, registries)
    assert is_sandbox_image("localhost:5001/php-hello:v2", registries)
    assert not is_sandbox_image("127.0.0.1:5001/go-hello:v1", registries)
    assert not is_sandbox_image("registry.example.com/x:1", registries)
    assert not is_sandbox_image("busybox:latest", registries)


def test_pull_unpacks_by_digest_and_a_second_pull_is_a_cache_hit(
    tmp_path: Path, registry: RegistryServer, image_ref: str
) -> None:
    store = ImageStore(tmp_path / "images")
    by_tag = image_ref.split("@")[0] + ":v1"
    rootfs, config = store.pull(by_tag)
    assert store.pulls == 1
    assert config.digest == image_ref.split("@")[1]
    assert config.cmd == ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    assert config.user == "65534"
    assert config.workdir == "/srv"
    assert "GREETING=hello-from-the-image" in config.env
    assert (rootfs / "bin" / "busybox").is_file()
    assert (rootfs / "srv" / "image-marker").is_file()
    # The mount points the runtime binds over exist in the rootfs.
    assert (rootfs / "proc").is_dir() and (rootfs / "etc" / "resolv.conf").is_file()

    assert store.pull(image_ref) == (rootfs, config)
    assert store.pulls == 1
    # A new store (an agent restart) finds the unpacked digest on disk.
    again = ImageStore(tmp_path / "images")
    assert again.pull(image_ref) == (rootfs, config)
    assert again.pulls == 0


def test_concurrent_pulls_of_one_digest_copy_it_once(tmp_path: Path, image_ref: str) -> None:
    store = ImageStore(tmp_path / "images")
    results: list[tuple] = []
    threads = [threading.Thread(target=lambda: results.append(store.pull(image_ref))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 4 and all(result == results[0] for result in results)
    assert store.pulls == 1


def test_an_unknown_image_raises_a_readable_pull_error(store: ImageStore, registry: RegistryServer) -> None:
    with pytest.raises(ImagePullError) as missing_repo:
        store.pull(f"{registry.host}/no-such-image:v1")
    message = str(missing_repo.value)
    assert message.startswith(f'Failed to pull image "{registry.host}/no-such-image:v1": ')
    assert "manifest unknown" in message
    assert "time=" not in message and "level=" not in message
    with pytest.raises(ImagePullError, match="manifest unknown"):
        store.pull(f"{registry.host}/rt-busybox@sha256:{'0' * 64}")
    with pytest.raises(ImagePullError, match="invalid digest"):
        store.pull(f"{registry.host}/rt-busybox@sha256:nothex")


# -- running --------------------------------------------------------------------------------------------


def test_container_runs_as_its_user_in_its_rootfs_and_serves_tcp_on_its_pod_ip(make_spec, podnet) -> None:
    spec = make_spec()
    container = make_spec.start(spec)
    status = Path(f"/proc/{container.pid}/status").read_text()
    assert re.search(r"^Uid:\s+65534\s+65534\s+65534\s+65534$", status, re.MULTILINE)
    assert re.search(r"^Gid:\s+65534\s", status, re.MULTILINE)
    assert Path(f"/proc/{container.pid}/comm").read_text().strip() == "httpd"
    # Its root is the image's rootfs, not the host's.
    root = Path(f"/proc/{container.pid}/root")
    assert (root / "srv" / "image-marker").exists()
    assert not (root / "usr" / "bin" / "python3").exists()
    # In the pod's network namespace.
    in_pod = os.stat(f"/proc/{container.pid}/ns/net")
    pod_netns = os.stat(f"/run/netns/{spec.netns}")
    assert (in_pod.st_dev, in_pod.st_ino) == (pod_netns.st_dev, pod_netns.st_ino)

    pod_ip = _ip("-n", spec.netns, "-o", "-4", "addr", "show", "dev", "eth0").split()[3].split("/")[0]
    assert pod_ip.startswith(f"10.0.{podnet.index}.")
    assert route_dev(pod_ip) == podnet.bridge  # before any packet is sent
    body = until("httpd answers on the pod IP", lambda: _http_get(pod_ip, 8080), timeout=10)
    assert body.startswith("HTTP/1.0 200") or body.startswith("HTTP/1.1 200")
    assert body.endswith("served from the container\n")


def _http_get(host: str, port: int) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            conn.sendall(b"GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks).decode()
    except OSError:
        return None


def test_output_goes_to_a_cri_log_and_the_exit_code_is_reported(make_spec) -> None:
    script = (
        'echo "out: $GREETING"; echo "err: $(id -u):$(hostname):$(pwd)" >&2; '
        "head -c 20000 /dev/zero | tr '\\0' x; echo; printf 'no newline at the end'; exit 3"
    )
    spec = make_spec(argv=["sh", "-c", script])
    container = make_spec.start(spec)
    assert container.wait(10) == 3
    assert container.poll() == 3
    records = log_records(spec.log_path)
    assert ("stdout", "F", "out: hello-from-the-pod") in records
    assert ("stderr", "F", "err: 65534:web-0:/srv") in records
    # A line longer than 16 KiB is split into partial records and a final one, as containerd does.
    long_parts = [(tag, text) for stream, tag, text in records if stream == "stdout" and set(text) == {"x"}]
    assert [tag for tag, _ in long_parts] == ["P", "F"]
    assert sum(len(text) for _, text in long_parts) == 20000
    assert ("stdout", "F", "no newline at the end") in records


def test_a_command_that_exits_at_once_has_started_and_reports_its_code(make_spec) -> None:
    """A crash-looping container is a started one that exits, not a CreateContainerError."""
    for argv, code in ((["true"], 0), (["false"], 1), (["sh", "-c", "exit 42"], 42)):
        container = make_spec.start(make_spec(argv=argv))
        assert container.wait(10) == code
        container.signal(signal.SIGTERM)  # harmless once it has exited
        container.cleanup()


def test_a_missing_network_namespace_is_a_start_error(make_spec) -> None:
    with pytest.raises(StartError, match="network namespace rt-no-such-netns does not exist"):
        Container.start(make_spec(netns="rt-no-such-netns"))


def test_cri_records_split_long_lines_whatever_the_chunks(tmp_path: Path) -> None:
    """The pipe may deliver a long line and the next ones in one read or byte by byte: same records."""
    output = b"x" * 20000 + b"\nshort\n" + b"y" * (MAX_LOG_LINE) + b"\nlast, unfinished"
    expected = [
        ("stdout", "P", "x" * MAX_LOG_LINE),
        ("stdout", "F", "x" * (20000 - MAX_LOG_LINE)),
        ("stdout", "F", "short"),
        ("stdout", "F", "y" * MAX_LOG_LINE),
        ("stdout", "F", "last, unfinished"),
    ]
    for size in (len(output), 4096, 1):
        path = tmp_path / f"chunks-{size}.log"
        read, write = os.pipe()
        pump = threading.Thread(target=pump_log, args=(read, "stdout", CriLog(path)))
        pump.start()
        for offset in range(0, len(output), size):
            os.write(write, output[offset : offset + size])
        os.close(write)
        pump.join(10)
        assert log_records(path) == expected, size


def test_generated_etc_files_and_an_own_pid_namespace(make_spec) -> None:
    script = (
        "cat /etc/hostname /etc/hosts /etc/resolv.conf; echo pid=$$; ls /proc; "
        "touch /tmp/a /var/tmp/b && echo scratch-writable; "
        "touch /srv/new 2>/dev/null || echo rootfs-read-only"
    )
    spec = make_spec(argv=["sh", "-c", script])
    container = make_spec.start(spec)
    assert container.wait(10) == 0
    lines = [text for stream, _, text in log_records(spec.log_path) if stream == "stdout"]
    assert lines[0] == "web-0"
    assert any(re.fullmatch(r"10\.0\.\d+\.\d+\tweb-0", line) for line in lines)
    assert "search demo.svc.cluster.local svc.cluster.local cluster.local" in lines
    assert not any(line.startswith("nameserver") for line in lines)  # nothing to ask off the machine
    assert "pid=2" in lines  # after bwrap's init, pid 1, which reaps and dies with the agent
    assert "scratch-writable" in lines and "rootfs-read-only" in lines
    pids = [int(line) for line in lines if line.isdigit()]
    assert max(pids) < 50  # only the container's own processes


def test_signal_reaches_the_command(make_spec) -> None:
    script = 'trap "echo got TERM; exit 0" TERM; echo ready; while :; do sleep 0.1; done'
    spec = make_spec(argv=["sh", "-c", script])
    container = make_spec.start(spec)
    until("ready", lambda: ("stdout", "F", "ready") in log_records(spec.log_path), timeout=10)
    container.signal(signal.SIGTERM)
    assert container.wait(10) == 0
    assert ("stdout", "F", "got TERM") in log_records(spec.log_path)


def test_a_root_container_gets_the_default_capabilities_only(make_spec) -> None:
    spec = make_spec(
        user="0", argv=["sh", "-c", "id -u; grep CapEff /proc/self/status; mount -t tmpfs x /tmp"]
    )
    container = make_spec.start(spec)
    assert container.wait(10) != 0  # mount needs CAP_SYS_ADMIN, which a container does not get
    lines = [text for _, _, text in log_records(spec.log_path)]
    assert lines[0] == "0"
    effective = int(lines[1].split()[1], 16)
    cap_sys_admin, cap_net_bind_service, cap_setuid = 21, 10, 7
    assert not effective & (1 << cap_sys_admin)
    assert effective & (1 << cap_net_bind_service) and effective & (1 << cap_setuid)
    # An exec into a root container gets the container's capabilities, not the host root's.
    root = make_spec.start(make_spec(user="0", argv=["sleep", "100"]))
    probe = ["sh", "-c", "grep CapEff /proc/self/status; mount -t tmpfs x /tmp"]
    entered = run_inside(root.enter_argv(probe))
    assert entered.returncode != 0 and entered.stdout.splitlines() == [lines[1]]
    shell = run_inside(["/bin/sh", "-c", probe[2]], env={"PATH": "/usr/bin:/bin", **root.exec_env()})
    assert shell.returncode != 0 and shell.stdout.splitlines() == [lines[1]]
    # A non-root user has none at all.
    nobody = make_spec(argv=["sh", "-c", "grep CapEff /proc/self/status"])
    container = make_spec.start(nobody)
    assert container.wait(10) == 0
    assert ("stdout", "F", "CapEff:\t0000000000000000") in log_records(nobody.log_path)


def test_a_missing_executable_raises_start_error_and_leaves_nothing(make_spec) -> None:
    spec = make_spec(argv=["/no/such/program", "--flag"])
    with pytest.raises(StartError, match='exec: "/no/such/program": executable file not found in \\$PATH'):
        Container.start(spec)
    with pytest.raises(StartError, match='"no-such-command": executable file not found'):
        Container.start(make_spec(argv=["no-such-command"]))
    with pytest.raises(StartError, match="unable to find user nosuchuser"):
        Container.start(make_spec(user="nosuchuser"))
    with pytest.raises(StartError, match="Can't chdir to /missing"):
        Container.start(make_spec(workdir="/missing"))
    relative = f"{spec.cgroup_parent}/{spec.pod_uid}"
    for controller in cgroups.CONTROLLERS:
        assert not cgroups.controller_dir(controller, relative).exists()


# -- limits and usage -----------------------------------------------------------------------------------


def test_a_process_beyond_the_memory_limit_is_oom_killed(make_spec) -> None:
    # dd reads into one 64 MiB buffer, touching every page of it, under a 16 MiB limit.
    spec = make_spec(
        argv=["sh", "-c", "echo before; exec dd if=/dev/zero of=/dev/null bs=64M count=1"],
        memory_limit_bytes=16 * MiB,
    )
    container = make_spec.start(spec)
    assert container.wait(20) == 128 + signal.SIGKILL
    assert container.oom_killed
    assert ("stdout", "F", "before") in log_records(spec.log_path)

    relaxed = make_spec(
        argv=["sh", "-c", "dd if=/dev/zero of=/dev/null bs=8M count=1"], memory_limit_bytes=64 * MiB
    )
    fine = make_spec.start(relaxed)
    assert fine.wait(20) == 0
    assert not fine.oom_killed


def test_the_cpu_quota_caps_usage_and_usage_reports_real_numbers(make_spec) -> None:
    spec = make_spec(
        argv=["sh", "-c", "while :; do :; done"], cpu_limit_millicores=200, cpu_request_millicores=100
    )
    container = make_spec.start(spec)
    cpu_dir = cgroups.controller_dir("cpu", f"{spec.cgroup_parent}/{spec.pod_uid}/{spec.container_name}")
    assert (cpu_dir / "cpu.cfs_quota_us").read_text().strip() == "20000"
    assert (cpu_dir / "cpu.cfs_period_us").read_text().strip() == "100000"
    assert (cpu_dir / "cpu.shares").read_text().strip() == "102"
    time.sleep(0.5)
    cpu_before, memory = container.usage()
    wall_before = time.monotonic()
    time.sleep(3.0)
    cpu_after, _ = container.usage()
    rate = (cpu_after - cpu_before) / 1e9 / (time.monotonic() - wall_before)
    # 200m is a fifth of a core; a busy loop without the quota takes a whole one (on a loaded machine
    # it may get less than its quota, so only the cap is exact).
    assert 0 < rate < 0.26, rate

    def throttled() -> int:
        stat = dict(line.split() for line in (cpu_dir / "cpu.stat").read_text().splitlines())
        return int(stat["nr_throttled"])

    until("the quota throttles the busy loop", throttled, timeout=20)
    assert 100_000 < memory < 64 * MiB  # a real working set: more than nothing, under the limit


# -- entering -------------------------------------------------------------------------------------------


def test_enter_argv_runs_inside_the_container(make_spec) -> None:
    spec = make_spec()
    container = make_spec.start(spec)
    done = run_inside(
        container.enter_argv(
            [
                "sh",
                "-c",
                "hostname; pwd; id -u; ls /; cat /proc/2/comm; echo $GREETING; cat /proc/self/cgroup",
            ]
        )
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["web-0", "/srv", "65534"]
    assert "srv" in lines and "usr" not in lines  # the image's rootfs (busybox has no /usr)
    assert "httpd" in lines  # the container's own pid namespace: its command is pid 2
    assert "hello-from-the-pod" in lines  # the container's environment
    assert any(re.fullmatch(r"\d+:memory:/", line) for line in lines)  # its own groups, as root of its view
    assert run_inside(container.enter_argv(["sh", "-c", "exit 7"])).returncode == 7
    missing = run_inside(container.enter_argv(["no-such-probe"]))
    assert missing.returncode == 127 and "no-such-probe" in missing.stderr

    # An exec'd process is accounted to the container's cgroups (so its limit and usage cover it).
    sleeper = subprocess.Popen(container.enter_argv(["sleep", "30"]))
    try:
        until(
            "the exec'd sleep is in the container's cgroup",
            lambda: any(_comm(pid) == "sleep" for pid in container.cgroups.pids()),
            timeout=10,
        )
    finally:
        sleeper.kill()
        sleeper.wait()


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_exec_env_makes_a_host_shell_command_run_inside_like_kwok_exec(make_spec) -> None:
    """kwok runs the Exec command itself (the web terminal's /bin/sh -c …, resolved on the host) with the
    Exec object's envs added: with exec_env() that command must land in the container."""
    container = make_spec.start(make_spec())
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "KWOK_ONLY": "kwok's own environment",
        "TERM": "xterm-test",
        "CHOSEN": "passed on on purpose",
        "OPSPORTAL_ENTER_KEEP": "CHOSEN",
        **container.exec_env(),
    }
    done = run_inside(["/bin/sh", "-c", "ls /; cat /etc/hostname; pwd; echo pid=$$; id -u; env"], env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "image-marker" not in lines and "srv" in lines and "usr" not in lines
    assert "web-0" in lines and "/srv" in lines and "65534" in lines
    pid_line = next(line for line in lines if line.startswith("pid="))
    assert int(pid_line.removeprefix("pid=")) < 50  # a pid of the container's namespace
    # The container's environment, as kubectl exec gives, not the caller's (kwok's).
    assert "GREETING=hello-from-the-pod" in lines
    assert not any(line.startswith(("LD_PRELOAD=", "OPSPORTAL_ENTER_PID=", "KWOK_ONLY=")) for line in lines)
    assert "TERM=xterm-test" in lines and "CHOSEN=passed on on purpose" in lines
    assert run_inside(["/bin/sh", "-c", "exit 5"], env=env).returncode == 5


def test_the_web_terminal_hang_up_finds_the_session_inside_the_container(make_spec) -> None:
    container = make_spec.start(make_spec())
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **container.exec_env()}
    marker = "session-1234"
    session = subprocess.Popen(
        shell_command(marker),
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        session.stdin.write(b"sleep 300\n")
        session.stdin.flush()

        def session_sleep() -> int | None:
            for pid in container.cgroups.pids():
                if _comm(pid) == "sleep" and f"{MARKER_VARIABLE}={marker}".encode() in _environ(pid):
                    return pid
            return None

        sleeper = until("the session's sleep runs in the container", session_sleep, timeout=10)
        hang_up = ["/bin/sh", "-c", HANG_UP_SCRIPT, "sh", f"{MARKER_VARIABLE}={marker}", "HUP"]
        sent = run_inside(hang_up, env=env)
        assert sent.returncode == 0
        try:
            until("SIGHUP ended the sleep", lambda: _not_running(sleeper), timeout=10)
        except AssertionError as exc:
            # Seen twice in cold runs, never reproduced by hand: say what the sleep was doing.
            said = f"hang-up said {sent.stdout!r} {sent.stderr!r}"
            raise AssertionError(f"{exc}; {_signal_state(sleeper)}; {said}") from None
        assert session.poll() is None  # the shell is spared the HUP, as on a VM
        kill = ["/bin/sh", "-c", HANG_UP_SCRIPT, "sh", f"{MARKER_VARIABLE}={marker}", "KILL"]
        assert run_inside(kill, env=env).returncode == 0
        # The shell inside dies; the host-side parent reports its death as its own.
        assert session.wait(10) == -signal.SIGKILL
    finally:
        session.kill()
        session.wait()


def _not_running(pid: int) -> bool:
    """Gone, or a zombie (dead, waiting for its parent, the shell, to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _signal_state(pid: int) -> str:
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError as exc:
        return f"no status: {exc}"
    keep = ("Name:", "State:", "PPid:", "NSpid:", "SigBlk:", "SigIgn:", "SigCgt:", "SigPnd:", "ShdPnd:")
    return " ".join(line.replace("\t", " ") for line in status if line.startswith(keep))


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


# -- ending ---------------------------------------------------------------------------------------------


def test_kill_and_cleanup_leave_no_process_and_no_cgroup(make_spec) -> None:
    spec = make_spec(argv=["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
    container = make_spec.start(spec)
    exec_sleep = subprocess.Popen(container.enter_argv(["sleep", "1000"]))
    until("all the container's processes", lambda: len(container.cgroups.pids()) >= 4, timeout=10)
    pids = container.cgroups.pids()
    container.kill()
    assert container.poll() == 128 + signal.SIGKILL
    assert exec_sleep.wait(10) != 0
    container.cleanup()
    container.cleanup()  # idempotent
    # A namespace's init takes a moment to exit: it waits until every process of the namespace is reaped.
    until("every process of the container gone", lambda: all(_gone(pid) for pid in pids), timeout=10)
    for controller in cgroups.CONTROLLERS:
        assert not cgroups.controller_dir(controller, f"{spec.cgroup_parent}/{spec.pod_uid}").exists()
    assert container.oom_killed is False
    assert container.usage()[0] > 0  # the last numbers stay readable after cleanup


def _gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


def test_the_container_dies_with_its_agent(tmp_path: Path, make_spec) -> None:
    """A killed agent (SIGKILL: no cleanup code runs) takes its containers with it."""
    spec = make_spec()
    leftover = cgroups.ContainerCgroups(f"{spec.cgroup_parent}/{spec.pod_uid}/{spec.container_name}")
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from sandbox.kube.agent.runtime import Container, ContainerSpec\n"
        f"spec = ContainerSpec(**{_spec_literal(spec)})\n"
        "c = Container.start(spec)\n"
        "print(c.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    agent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    try:
        pid = int(agent.stdout.readline())
        assert _comm(pid) == "httpd"
        agent.kill()
        agent.wait()
        until("container gone", lambda: _gone(pid), timeout=10)
        # Nothing of it is left running; only its (empty) groups, for the next agent's cleanup.
        until("its groups empty", lambda: not leftover.pids(), timeout=10)
    finally:
        agent.kill()
        agent.wait()
        leftover.remove(parents=3)


def _spec_literal(spec: ContainerSpec) -> str:
    fields = {key: value for key, value in vars(spec).items()}
    return "{" + ", ".join(f"{key!r}: {_literal(value)}" for key, value in fields.items()) + "}"


def _literal(value) -> str:
    return f"Path({str(value)!r})" if isinstance(value, Path) else repr(value)


# -- the JVM's view of its limits ------------------------------------------------------------------------

JDK = Path("/usr/lib/jvm/java-17-openjdk-amd64")


@pytest.fixture(scope="module")
def jre_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rootfs holding the host's JDK and the libraries it links (hard links: no copy of 200 MB)."""
    if not (JDK / "bin" / "java").exists():
        unavailable(f"no JDK at {JDK} (apt-get install openjdk-17-jdk-headless)")
    root = tmp_path_factory.mktemp("jre") / "rootfs"
    skip = shutil.ignore_patterns("jmods", "docs", "include", "man", "src.zip", "demo")
    shutil.copytree(JDK, root / JDK.relative_to("/"), symlinks=True, copy_function=_link_or_copy, ignore=skip)
    config = Path("/etc/java-17-openjdk")  # Debian's JDK links its conf/ files there
    if config.exists():
        shutil.copytree(config, root / "etc" / config.name, symlinks=True, copy_function=_link_or_copy)
    libdir = root / "usr" / "lib" / "x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    for lib in (
        "libc.so.6",
        "libm.so.6",
        "libstdc++.so.6",
        "libgcc_s.so.1",
        "libz.so.1",
        "ld-linux-x86-64.so.2",
    ):
        _link_or_copy(os.path.realpath(f"/lib/x86_64-linux-gnu/{lib}"), libdir / lib)
    (root / "usr" / "lib64").mkdir()
    (root / "usr" / "lib64" / "ld-linux-x86-64.so.2").symlink_to("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    (root / "lib").symlink_to("usr/lib")
    (root / "lib64").symlink_to("usr/lib64")
    prepare_rootfs(root)
    return root


def _link_or_copy(source, target) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def test_the_jvm_inside_sizes_itself_from_the_container_limits(make_spec, jre_rootfs: Path) -> None:
    java = str(JDK / "bin" / "java")

    def run_java(*args: str) -> str:
        spec = make_spec(
            rootfs=jre_rootfs,
            argv=[java, *args],
            env={},
            workdir="/",
            user="65534",
            memory_limit_bytes=512 * MiB,
            cpu_limit_millicores=500,
            container_name=f"java{len(args)}",
        )
        container = make_spec.start(spec)
        assert container.wait(60) == 0, spec.log_path.read_text()
        return "\n".join(text for _, _, text in log_records(spec.log_path))

    settings = run_java("-XX:+UseContainerSupport", "-XshowSettings:system", "-version")
    assert "Memory Limit: 512.00M" in settings
    assert "CPU Quota: 50000us" in settings
    flags = run_java("-XX:+UseContainerSupport", "-XX:+PrintFlagsFinal", "-version")
    max_heap = int(re.search(r"\bMaxHeapSize\s+=\s+(\d+)", flags).group(1))
    assert max_heap == 128 * MiB  # MaxRAMPercentage (25%) of the 512 MiB limit, not of the host's RAM
    processors = run_java("-XX:+UseContainerSupport", "-Xlog:os+container=debug", "-version")
    assert "Required cgroup v1 cpuset subsystem not found" not in processors


# -- the C helpers' build ---------------------------------------------------------------------------------


def test_the_runtime_helpers_are_built_by_gcc_per_source_version(tmp_path: Path, monkeypatch) -> None:
    if not shutil.which("gcc"):
        unavailable("required tool missing: gcc")
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path / "cache"))
    sources = tmp_path / "sources"
    shutil.copytree(build.RUNTIME_SOURCES, sources, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setattr(build, "RUNTIME_SOURCES", sources)
    assert not build.runtime_helpers_ready()
    assert not build.binaries_ready()
    messages: list[str] = []
    paths = build.ensure_runtime_helpers(messages.append)
    assert set(paths) == {"opsportal-init", "opsportal-enter", "libopsportal-enter.so"}
    assert all(os.access(path, os.X_OK) for path in paths.values())
    assert build.runtime_helpers_ready()
    assert build.binary_paths()["libopsportal-enter.so"] == paths["libopsportal-enter.so"]
    assert sum("gcc" in m for m in messages) == 3
    # The init helper runs inside images without a libc.
    ldd = subprocess.run(["ldd", str(paths["opsportal-init"])], capture_output=True, text=True, check=False)
    assert "not a dynamic executable" in ldd.stdout + ldd.stderr
    messages.clear()
    assert build.ensure_runtime_helpers(messages.append) == paths
    assert messages == []  # up to date: nothing compiled

    # An edited source is another version: not ready until built, built beside the old one.
    (sources / "enter.c").write_text((sources / "enter.c").read_text() + "\n/* edited */\n")
    assert not build.runtime_helpers_ready()
    edited = build.ensure_runtime_helpers(messages.append)
    assert sum("gcc" in m for m in messages) == 3
    assert edited["opsportal-enter"].parent != paths["opsportal-enter"].parent
    assert paths["opsportal-enter"].exists()  # another checkout may still use it
    assert not list(build.bin_dir().glob(".building-*"))

    # A failed compile leaves nothing under the version's name.
    (sources / "init.c").write_text("this is not C\n")
    with pytest.raises(build.BuildError, match="init.c"):
        build.ensure_runtime_helpers(messages.append)
    assert not build.runtime_helpers_ready()
    assert not build.runtime_helper_dir().exists()
    assert not list(build.bin_dir().glob(".building-*"))
