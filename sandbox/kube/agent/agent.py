"""The sandbox's kubelet: runs the pods bound to the cluster's kwok nodes as real processes.

One watch on all pods feeds a dispatcher that never blocks: a pod whose images all come from a sandbox
registry gets its own worker thread (network namespace, image pull, env, start, probes, restarts with
CrashLoopBackOff back-off, status, deletion); any other pod is simulated the way kwok's fast pod stages
did (an IP, Running and Ready at once, deleted at once), on a small thread pool.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, watch
from kubernetes.utils.quantity import parse_quantity

from sandbox.kube.agent import env as kenv
from sandbox.kube.agent import probes
from sandbox.kube.agent.cgroups import ContainerStats
from sandbox.kube.podnet import PodNetwork

try:  # helper B's runtime; without it every pod is simulated
    from sandbox.kube.agent import runtime
except ImportError:  # pragma: no cover - only before the runtime exists
    runtime = None

log = logging.getLogger("sandbox.kube.agent")

SIMULATED_ANNOTATION = "sandbox.opsportal.io/simulated"
NOT_IN_REGISTRY = "image not in the sandbox registry"
HOST_IP = "127.0.0.1"
KWOK = ("kwok.x-k8s.io", "v1alpha1")
POLL_INTERVAL = 0.2
BACKOFF_RESET_AFTER = 600.0  # the kubelet forgets a container's back-off after it ran this long
DEFAULT_GRACE = 30
SIMULATED_RETRIES = 30


@dataclass(frozen=True)
class ContainerStatsSample:
    namespace: str
    pod: str
    pod_uid: str
    container: str
    image: str
    container_id: str  # "sandbox://<hex>", as in the pod's containerStatuses
    cgroup: str  # the container's group below each controller's root, "/<parent>/<pod uid>/<container>"
    stats: ContainerStats


def rfc3339(when: float | None = None) -> str:
    stamp = datetime.datetime.fromtimestamp(time.time() if when is None else when, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


class Registries:
    """Registry hosts (``host:port``) the agent may pull from: fixed ones plus a file re-read on change,
    so a test can allow its own short-lived registry without restarting the agent."""

    def __init__(self, fixed: Iterable[str], path: Path | None) -> None:
        self._fixed = [r for r in fixed if r]
        self._path = path
        self._mtime: float | None = None
        self._from_file: list[str] = []

    def hosts(self) -> list[str]:
        if self._path is not None:
            try:
                mtime = self._path.stat().st_mtime
            except OSError:
                mtime = None
            if mtime != self._mtime:
                self._mtime = mtime
                text = self._path.read_text() if mtime is not None else ""
                self._from_file = [line.strip() for line in text.splitlines() if line.strip()]
        return [*self._fixed, *self._from_file]


# ---------------------------------------------------------------------------------------------------------


class ContainerRunner:
    """One container of a real pod: start, watch, probe, restart with back-off, report."""

    def __init__(self, worker: PodWorker, spec: dict) -> None:
        self.worker = worker
        self.spec = spec
        self.name: str = spec["name"]
        self.container = None  # runtime.Container while one runs
        self.rootfs: Path | None = None
        self.config = None  # runtime.ImageConfig once pulled
        self.restart_count = 0
        self.state: dict = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict = {}
        self.ready = False
        self.started = False
        self.finished = False  # terminated and not restarted (restartPolicy)
        self.exit_code: int | None = None
        self.started_mono = 0.0
        self.next_start = 0.0
        self.backoff = 0.0
        self.failures = 0  # consecutive pull/create failures
        self.container_id = ""
        self.image_id = ""
        self.probers: dict[str, probes.Prober] = {}

    # -- paths -----------------------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.worker.pod_dir / f"{self.name}.log"

    @property
    def previous_log_path(self) -> Path:
        return self.worker.pod_dir / f"{self.name}.previous.log"

    # -- loop ------------------------------------------------------------------------------------------

    def next_due(self) -> float:
        if self.container is None:
            return float("inf") if self.finished else self.next_start
        dues = [p.next_at for kind, p in self.probers.items() if kind == "startup" or self.started]
        return min([time.monotonic() + POLL_INTERVAL, *dues])

    def tick(self, now: float) -> None:
        if self.container is None:
            if not self.finished and now >= self.next_start:
                self._start(now)
            return
        code = self.container.poll()
        if code is not None:
            self._exited(code, now)
            return
        self._probe(now)

    def _waiting(self, reason: str, message: str, now: float) -> None:
        self.failures += 1
        delay = min(self.worker.agent.backoff_base * 2 ** (self.failures - 1), self.worker.agent.backoff_max)
        if self.failures > 1 and reason == "ErrImagePull":
            reason = "ImagePullBackOff"
        self.state = {"waiting": {"reason": reason, "message": message}}
        self.next_start = now + delay

    def _start(self, now: float) -> None:
        worker, agent = self.worker, self.worker.agent
        image = self.spec.get("image", "")
        if self.config is None:
            try:
                self.rootfs, self.config = agent.images.pull(image)
            except runtime.ImagePullError as exc:
                self._waiting("ErrImagePull", str(exc), now)
                return
            except Exception as exc:  # a broken tool or cache must not kill the pod's worker
                log.exception("pulling %s", image)
                self._waiting("ErrImagePull", f"{type(exc).__name__}: {exc}", now)
                return
            self.image_id = f"{_image_name(image)}@{self.config.digest}"
        try:
            env = kenv.resolve_env(
                self.spec, worker.facts(), worker.namespace, agent.lookup, list(self.config.env)
            )
        except kenv.EnvError as exc:
            self._waiting("CreateContainerConfigError", str(exc), now)
            return
        argv = kenv.resolve_argv(self.spec, list(self.config.entrypoint), list(self.config.cmd), env)
        if not argv:
            self._waiting("CreateContainerError", "no command specified", now)
            return
        resources = self.spec.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        if self.log_path.exists() and self.restart_count:
            self.log_path.replace(self.previous_log_path)
        spec = runtime.ContainerSpec(
            pod_uid=worker.uid,
            namespace=worker.namespace,
            pod_name=worker.name,
            container_name=self.name,
            rootfs=self.rootfs,
            argv=argv,
            env=env,
            workdir=self.spec.get("workingDir") or self.config.workdir or "/",
            user=worker.run_as_user(self.spec) or self.config.user or "",
            netns=worker.netns.name,
            hostname=worker.pod["spec"].get("hostname") or worker.name,
            memory_limit_bytes=_quantity_int(limits.get("memory")),
            cpu_limit_millicores=_millicores(limits.get("cpu")),
            cpu_request_millicores=_millicores(requests.get("cpu") or limits.get("cpu")),
            log_path=self.log_path,
            cgroup_parent=agent.network.cgroup_parent,
        )
        try:
            self.container = runtime.Container.start(spec)
        except runtime.StartError as exc:
            self._waiting("CreateContainerError", str(exc), now)
            return
        except Exception as exc:
            log.exception("starting %s/%s %s", worker.namespace, worker.name, self.name)
            self._waiting("CreateContainerError", f"{type(exc).__name__}: {exc}", now)
            return
        self.failures = 0
        self.started_mono = now
        started_at = rfc3339()
        self.container_id = (
            "sandbox://"
            + hashlib.sha256(
                f"{worker.uid}/{self.name}/{self.restart_count}/{started_at}".encode()
            ).hexdigest()[:32]
        )
        self.state = {"running": {"startedAt": started_at}}
        self.probers = {
            kind: probes.Prober(
                kind=kind,
                spec=self.spec[key],
                container=self.spec,
                pod_ip=worker.pod_ip,
                enter=self.container.enter_argv,
                started_at=now,
            )
            for kind, key in (("startup", "startupProbe"), ("readiness", "readinessProbe"))
            + (("liveness", "livenessProbe"),)
            if self.spec.get(key)
        }
        self.started = "startup" not in self.probers
        self.ready = self.started and "readiness" not in self.probers
        worker.container_started(self)

    def _run_probe(self, prober: probes.Prober, now: float) -> bool | None:
        outcome = prober.run(now)
        if prober.last is not None and not prober.last.ok:
            # The kubelet records every failed probe, not only the one that crosses the threshold: the
            # count on the environment page says how long a pod has been failing.
            self.worker.agent.event(
                self.worker.pod,
                "Unhealthy",
                f"{prober.kind.capitalize()} probe failed: {prober.last.message}",
                "Warning",
            )
        return outcome

    def _probe(self, now: float) -> None:
        startup = self.probers.get("startup")
        if not self.started:
            if startup is not None and startup.due(now):
                outcome = self._run_probe(startup, now)
                if outcome is True:
                    self.started = True
                    self.ready = "readiness" not in self.probers
                elif outcome is False:
                    self.restart_for(f"Startup probe failed: {startup.last.message}")
            return
        readiness = self.probers.get("readiness")
        if readiness is not None and readiness.due(now):
            outcome = self._run_probe(readiness, now)
            if outcome is not None:
                self.ready = outcome
        liveness = self.probers.get("liveness")
        if liveness is not None and liveness.due(now) and self._run_probe(liveness, now) is False:
            self.restart_for(f"Liveness probe failed: {liveness.last.message}")

    def restart_for(self, message: str) -> None:
        """Kill the container the way the kubelet does for a failed probe; the exit restarts it."""
        log.info(
            "%s/%s %s: %s, will be restarted", self.worker.namespace, self.worker.name, self.name, message
        )
        self.worker.agent.event(self.worker.pod, "Killing", f"Container {self.name} {message.lower()}")
        self.ready = False
        grace = self.worker.grace_seconds()
        deadline = time.monotonic() + grace
        self.worker.run_pre_stop(self, deadline)
        self.stop(deadline)

    def stop(self, deadline: float) -> None:
        """SIGTERM, wait until ``deadline``, SIGKILL; the exit is recorded by the next tick."""
        container = self.container
        if container is None:
            return
        with contextlib.suppress(ProcessLookupError, OSError):
            container.signal(signal.SIGTERM)
        if container.wait(max(0.0, deadline - time.monotonic())) is None:
            container.kill()
            container.wait(10)

    def _exited(self, code: int, now: float) -> None:
        container, self.container = self.container, None
        if code < 0:
            code = 128 - code  # killed by signal -code, as a shell reports it
        reason = "OOMKilled" if container.oom_killed else ("Completed" if code == 0 else "Error")
        terminated = {
            "exitCode": code,
            "reason": reason,
            "startedAt": self.state.get("running", {}).get("startedAt") or rfc3339(),
            "finishedAt": rfc3339(),
            "containerID": self.container_id,
        }
        with contextlib.suppress(Exception):
            container.cleanup()
        self.ready = self.started = False
        self.probers = {}
        self.exit_code = code
        policy = self.worker.pod["spec"].get("restartPolicy") or "Always"
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            self.finished = True
            self.state = {"terminated": terminated}
            return
        self.last_state = {"terminated": terminated}
        self.restart_count += 1
        agent = self.worker.agent
        if now - self.started_mono >= BACKOFF_RESET_AFTER:
            self.backoff = 0.0
        # As the kubelet: the first restart is immediate, later ones wait base, 2×base, ... up to max.
        delay, self.backoff = self.backoff, min(max(self.backoff * 2, agent.backoff_base), agent.backoff_max)
        self.next_start = now + delay
        if delay > 0:
            pod = self.worker
            message = (
                f"back-off {_duration(delay)} restarting failed container={self.name} "
                f"pod={pod.name}_{pod.namespace}({pod.uid})"
            )
            self.state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
            agent.event(pod.pod, "BackOff", f"Back-off restarting failed container {self.name}", "Warning")
        else:
            self.state = {"waiting": {"reason": "ContainerCreating"}}

    def status(self) -> dict:
        status = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": self.image_id,
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }
        if self.container_id and ("running" in self.state or "terminated" in self.state):
            status["containerID"] = self.container_id
        return status


def spec_host_network(pod: dict) -> bool:
    return bool((pod.get("spec") or {}).get("hostNetwork"))


def _image_name(image: str) -> str:
    """``host:port/repo`` of an image reference, without tag or digest."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def _quantity_int(value) -> int | None:
    return None if value in (None, "") else int(parse_quantity(value))


def _millicores(value) -> int | None:
    return None if value in (None, "") else int(parse_quantity(value) * 1000)


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m0s"
    return f"{seconds:g}s"


class PodWorker(threading.Thread):
    """The life of one real pod, on its own thread so nothing it waits for blocks the watch."""

    def __init__(self, agent: Agent, pod: dict) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.agent = agent
        self.pod = pod
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        self.netns = None
        self.pod_ip = ""
        self.start_time = rfc3339()
        self.runners = [ContainerRunner(self, c) for c in pod["spec"]["containers"]]
        self._wake = threading.Event()
        self._gone = threading.Event()
        self._written: dict | None = None
        self._transitions: dict[str, tuple[str, str]] = {}
        self._exec_pid: int | None = None

    @property
    def pod_dir(self) -> Path:
        return self.agent.workdir / "pods" / self.namespace / self.name

    def update(self, pod: dict) -> None:
        self.pod = pod
        self._wake.set()

    def gone(self) -> None:
        """The pod object disappeared (force deletion): stop at once."""
        self._gone.set()
        self._wake.set()

    @property
    def deleting(self) -> bool:
        return bool(self.pod["metadata"].get("deletionTimestamp"))

    def grace_seconds(self) -> float:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds")
        return float(DEFAULT_GRACE if grace is None else grace)

    def run_as_user(self, container: dict) -> str:
        for context in (container.get("securityContext"), self.pod["spec"].get("securityContext")):
            if context and context.get("runAsUser") is not None:
                return str(context["runAsUser"])
        return ""

    def facts(self) -> kenv.PodFacts:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        return kenv.PodFacts(
            name=self.name,
            namespace=self.namespace,
            uid=self.uid,
            node_name=spec.get("nodeName") or "",
            pod_ip=self.pod_ip,
            host_ip=HOST_IP,
            service_account=spec.get("serviceAccountName") or "default",
            labels=meta.get("labels") or {},
            annotations=meta.get("annotations") or {},
        )

    # -- thread ----------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s/%s failed", self.namespace, self.name)
        finally:
            if self.agent.stopping.is_set():
                self._stop_runners(self.agent.stop_deadline)
            self._kill_all()
            with contextlib.suppress(Exception):
                self.agent.network.remove_pod(self.uid)
            self.agent.forget(self.uid, self)

    def _run(self) -> None:
        if not self.deleting:
            self.pod_dir.mkdir(parents=True, exist_ok=True)
            self.netns = self.agent.network.add_pod(self.uid)
            self.pod_ip = self.netns.ip
            self.agent.ensure_exec(self.pod, envs=None)
            self.agent.ensure_logs(self.pod, self.runners)
        while not self._gone.is_set() and not self.deleting and not self.agent.stopping.is_set():
            now = time.monotonic()
            for runner in self.runners:
                runner.tick(now)
            self.write_status()
            wait = min([r.next_due() for r in self.runners] + [now + 1.0]) - time.monotonic()
            if self._wake.wait(max(0.0, min(wait, 1.0))):
                self._wake.clear()
        if self.deleting and not self._gone.is_set():
            self._terminate()
            self.agent.delete_pod(self.pod)

    def _terminate(self) -> None:
        """preStop hooks, then SIGTERM, then SIGKILL once the grace period is over."""
        deadline = time.monotonic() + self.grace_seconds()
        running = [r for r in self.runners if r.container is not None]
        _in_parallel([(self.run_pre_stop, (r, deadline)) for r in running])
        self._stop_runners(deadline)

    def _stop_runners(self, deadline: float) -> None:
        _in_parallel([(r.stop, (deadline,)) for r in self.runners if r.container is not None])

    def run_pre_stop(self, runner: ContainerRunner, deadline: float) -> None:
        """The container's preStop hook, given until ``deadline`` (the grace period). As the kubelet does,
        a failed hook is a FailedPreStopHook warning event whose message leaves the output out (it may hold
        secrets); the output goes to this agent's log. A hook still running at the deadline is cut off
        without an event."""
        hook = ((runner.spec.get("lifecycle") or {}).get("preStop")) or {}
        timeout = max(0.0, deadline - time.monotonic())
        if runner.container is None or not hook or timeout <= 0:
            return
        failure = ""
        if hook.get("exec"):
            command = list(hook["exec"].get("command") or [])
            argv = runner.container.enter_argv(command)
            try:
                done = subprocess.run(argv, timeout=timeout, stdin=subprocess.DEVNULL, capture_output=True)
            except subprocess.TimeoutExpired:
                log.info(
                    "%s/%s %s: PreStop hook not completed in grace period",
                    self.namespace,
                    self.name,
                    runner.name,
                )
                return
            except OSError as exc:
                failure = str(exc)
            else:
                if done.returncode != 0:
                    output = (done.stdout + done.stderr).decode(errors="replace")
                    failure = f"command {command} exited with {done.returncode}: {output[-2000:]!r}"
        elif hook.get("httpGet"):
            result = probes.http_get(hook["httpGet"], runner.spec, self.pod_ip, timeout)
            if not result.ok:
                failure = result.message
        elif hook.get("sleep"):
            time.sleep(min(float(hook["sleep"].get("seconds") or 0), timeout))
        if failure:
            log.info("%s/%s %s: PreStop hook failed: %s", self.namespace, self.name, runner.name, failure)
            self.agent.event(self.pod, "FailedPreStopHook", "PreStopHook failed", kind="Warning")

    def _kill_all(self) -> None:
        for runner in self.runners:
            container, runner.container = runner.container, None
            if container is None:
                continue
            with contextlib.suppress(Exception):
                container.kill()
                container.wait(5)
            with contextlib.suppress(Exception):
                container.cleanup()

    def container_started(self, runner: ContainerRunner) -> None:
        if runner is self.runners[0]:
            self.agent.ensure_exec(self.pod, envs=runner.container.exec_env())
        self.agent.event(self.pod, "Started", f"Started container {runner.name}")

    # -- status ----------------------------------------------------------------------------------------

    def _condition(self, kind: str, ok: bool) -> dict:
        status = "True" if ok else "False"
        previous = self._transitions.get(kind)
        if previous is None or previous[0] != status:
            self._transitions[kind] = (status, rfc3339())
        condition = {"type": kind, "status": status, "lastTransitionTime": self._transitions[kind][1]}
        if not ok and kind in ("Ready", "ContainersReady"):
            unready = sorted(r.name for r in self.runners if not r.ready)
            condition["reason"] = "ContainersNotReady"
            condition["message"] = f"containers with unready status: [{' '.join(unready)}]"
        return condition

    def status(self) -> dict:
        runners = self.runners
        ready = all(r.ready for r in runners)
        if all(r.finished for r in runners):
            phase = "Succeeded" if all(r.exit_code == 0 for r in runners) else "Failed"
        elif any(r.container is not None or r.restart_count or r.finished for r in runners):
            phase = "Running"
        else:
            phase = "Pending"
        status = {
            "phase": phase,
            "conditions": [
                self._condition("PodReadyToStartContainers", True),
                self._condition("Initialized", True),
                self._condition("Ready", ready),
                self._condition("ContainersReady", ready),
                self._condition("PodScheduled", True),
            ],
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "startTime": self.start_time,
            "containerStatuses": [r.status() for r in runners],
        }
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        return status

    def write_status(self) -> None:
        status = self.status()
        if status == self._written:
            return
        if self.agent.patch_status(self.pod, status):
            self._written = status


# ---------------------------------------------------------------------------------------------------------


class Agent:
    def __init__(
        self,
        *,
        api_client,
        nodes: Sequence[str],
        workdir: Path,
        network: PodNetwork,
        registries: Registries,
        image_cache: Path,
        backoff_base: float = 10.0,
        backoff_max: float = 300.0,
        workers: int = 4,
    ) -> None:
        self.api = api_client
        self.core = client.CoreV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.nodes = set(nodes)
        self.workdir = Path(workdir)
        self.network = network
        self.registries = registries
        self.images = runtime.ImageStore(image_cache) if runtime is not None else None
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stopping = threading.Event()
        self.stop_deadline = 0.0
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="agent-sim")
        self._lock = threading.Lock()
        self._workers: dict[str, PodWorker] = {}
        self._simulated: dict[str, dict] = {}  # uid -> latest pod
        self._sim_locks: dict[str, threading.Lock] = {}
        self._sim_done: dict[str, set[str]] = {}
        self._retries: dict[str, int] = {}  # uid -> steps done (annotated, exec, ready, complete)

    # -- watch -----------------------------------------------------------------------------------------

    def run(self) -> None:
        """List, then watch from that version; relist after any error or expiry."""
        while not self.stopping.is_set():
            try:
                version = self._relist()
                while not self.stopping.is_set():
                    version = self._watch(version)
            except _Expired:
                continue
            except Exception as exc:  # the apiserver restarting, a dropped connection
                log.warning("pod watch failed, relisting: %s", exc)
                self.stopping.wait(1.0)

    def _relist(self) -> str:
        response = self.core.list_pod_for_all_namespaces(_preload_content=False)
        body = json.loads(response.data)
        seen = set()
        for pod in body.get("items") or []:
            seen.add(pod["metadata"]["uid"])
            self.dispatch("ADDED", pod)
        with self._lock:
            vanished = [uid for uid in [*self._workers, *self._simulated] if uid not in seen]
        for uid in vanished:
            self._forget_pod(uid)
        return body["metadata"]["resourceVersion"]

    def _watch(self, version: str) -> str:
        stream = watch.Watch()
        for event in stream.stream(
            self.core.list_pod_for_all_namespaces,
            resource_version=version,
            timeout_seconds=120,
            allow_watch_bookmarks=True,
        ):
            if self.stopping.is_set():
                stream.stop()
                break
            kind, obj = event["type"], event["raw_object"]
            if kind == "ERROR":
                raise _Expired(obj.get("message", ""))
            version = obj.get("metadata", {}).get("resourceVersion") or version
            if kind != "BOOKMARK":
                self.dispatch(kind, obj)
        return version

    def dispatch(self, kind: str, pod: dict) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid = meta["uid"]
        if kind == "DELETED":
            self._forget_pod(uid)
            return
        if spec.get("nodeName") not in self.nodes:
            return
        with self._lock:
            worker = self._workers.get(uid)
            simulated = uid in self._simulated
            if simulated:
                self._simulated[uid] = pod
        if worker is not None:
            worker.update(pod)
            return
        if not simulated:
            reason = self.simulation_reason(pod)
            if reason is None:
                worker = PodWorker(self, pod)
                with self._lock:
                    self._workers[uid] = worker
                worker.start()
                return
            with self._lock:
                self._simulated[uid] = pod
                self._sim_locks[uid] = threading.Lock()
                self._sim_done[uid] = {"reason:" + reason}
        self._pool.submit(self._sync_simulated, uid)

    def simulation_reason(self, pod: dict) -> str | None:
        spec = pod["spec"]
        if runtime is None or self.images is None:
            return "the sandbox container runtime is not available"
        hosts = self.registries.hosts()
        images = [c.get("image", "") for c in [*spec.get("initContainers", []), *spec["containers"]]]
        if not all(runtime.is_sandbox_image(image, hosts) for image in images):
            return NOT_IN_REGISTRY
        if spec.get("initContainers"):
            return "init containers are not run by the sandbox agent"
        if spec.get("hostNetwork"):
            return "host-network pods are not run by the sandbox agent"
        return None

    def _forget_pod(self, uid: str) -> None:
        with self._lock:
            worker = self._workers.get(uid)
            self._simulated.pop(uid, None)
            self._sim_locks.pop(uid, None)
            self._sim_done.pop(uid, None)
            self._retries.pop(uid, None)
        if worker is not None:
            worker.gone()
        elif uid in self.network.pod_ips():
            self.network.release_ip(uid)  # a simulated pod's address

    def forget(self, uid: str, worker: PodWorker) -> None:
        with self._lock:
            if self._workers.get(uid) is worker:
                del self._workers[uid]

    # -- simulated pods (kwok's fast stages) --------------------------------------------------------------

    def _sync_simulated(self, uid: str) -> None:
        with self._lock:
            pod, lock, done = self._simulated.get(uid), self._sim_locks.get(uid), self._sim_done.get(uid)
        if pod is None or lock is None or done is None:
            return
        with lock:
            try:
                finished = self._step_simulated(pod, done)
            except client.ApiException as exc:
                finished = exc.status == 404  # gone: its DELETED event follows
                if not finished:
                    log.warning("simulated pod %s: %s", pod["metadata"]["name"], exc.reason)
            except Exception:
                log.exception("simulated pod %s", pod["metadata"]["name"])
                finished = False
        if not finished and self._retries.get(uid, 0) < SIMULATED_RETRIES and not self.stopping.is_set():
            # A failed write (the apiserver busy or restarting) would otherwise wait for the pod's next event.
            self._retries[uid] = self._retries.get(uid, 0) + 1
            timer = threading.Timer(1.0, lambda: self._pool.submit(self._sync_simulated, uid))
            timer.daemon = True
            timer.start()

    def _step_simulated(self, pod: dict, done: set[str]) -> bool:
        """One kwok-like stage for ``pod``; False when a write failed and the step should be retried."""
        meta, status = pod["metadata"], pod.get("status") or {}
        if meta.get("deletionTimestamp"):
            if "deleted" not in done and self.delete_pod(pod):
                done.add("deleted")
            return "deleted" in done
        if "annotated" not in done:
            reason = next(step for step in done if step.startswith("reason:")).removeprefix("reason:")
            if (meta.get("annotations") or {}).get(SIMULATED_ANNOTATION) != reason:
                self.core.patch_namespaced_pod(
                    meta["name"],
                    meta["namespace"],
                    {"metadata": {"annotations": {SIMULATED_ANNOTATION: reason}}},
                )
            done.add("annotated")
        if "exec" not in done:
            self.ensure_exec(pod, envs=None)
            done.add("exec")
        if status.get("podIP") and not spec_host_network(pod):
            self.network.reserve(meta["uid"], status["podIP"])  # a pod simulated before a restart
        phase = status.get("phase") or "Pending"
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
        )
        owners = {ref.get("kind") for ref in meta.get("ownerReferences") or []}
        if phase == "Pending" and not ready and "ready" not in done:
            if not self.patch_status(pod, self._simulated_ready(pod)):
                return False
            done.add("ready")
        elif phase == "Running" and "Job" in owners and "complete" not in done:
            if not self.patch_status(pod, self._simulated_complete(pod)):
                return False
            done.add("complete")
        return True

    def _simulated_ready(self, pod: dict) -> dict:
        spec, now = pod["spec"], rfc3339()
        ip = HOST_IP if spec.get("hostNetwork") else self.network.allocate(pod["metadata"]["uid"])
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": now}
            for kind in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ]
        conditions += [
            {"type": gate["conditionType"], "status": "True", "lastTransitionTime": now}
            for gate in spec.get("readinessGates") or []
        ]
        init = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "ready": True,
                "restartCount": 0,
                **(
                    {"started": True, "state": {"running": {"startedAt": now}}}
                    if c.get("restartPolicy") == "Always"
                    else {
                        "state": {
                            "terminated": {
                                "exitCode": 0,
                                "reason": "Completed",
                                "startedAt": now,
                                "finishedAt": now,
                            }
                        }
                    }
                ),
            }
            for c in spec.get("initContainers") or []
        ]
        status = {
            "phase": "Running",
            "conditions": conditions,
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for c in spec["containers"]
            ],
            "hostIP": HOST_IP,
            "hostIPs": [{"ip": HOST_IP}],
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now,
        }
        if init:
            status["initContainerStatuses"] = init
        return status

    def _simulated_complete(self, pod: dict) -> dict:
        now = rfc3339()
        terminated = {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}
        return {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
                for c in pod["spec"]["containers"]
            ],
        }

    # -- API writes ------------------------------------------------------------------------------------

    def patch_status(self, pod: dict, status: dict) -> bool:
        """A JSON merge patch of the status subresource: lists (conditions, containerStatuses) are
        replaced whole, so a container's old state never merges into its new one. The uid in the patch
        keeps a write from landing on a new pod of the same name."""
        meta = pod["metadata"]
        try:
            self.api.call_api(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                "PATCH",
                header_params={"Content-Type": "application/merge-patch+json", "Accept": "application/json"},
                body={"metadata": {"uid": meta["uid"]}, "status": status},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
            )
        except client.ApiException as exc:
            if exc.status == 404:
                return True  # gone; its DELETED event follows
            log.warning("status of %s/%s: %s", meta["namespace"], meta["name"], exc.reason)
            return False
        except Exception as exc:
            log.warning("status of %s/%s: %s", meta["namespace"], meta["name"], exc)
            return False
        return True

    def delete_pod(self, pod: dict) -> bool:
        """Delete now, only this pod (uid precondition); True once it is gone or going."""
        meta = pod["metadata"]
        try:
            self.core.delete_namespaced_pod(
                meta["name"],
                meta["namespace"],
                grace_period_seconds=0,
                body=client.V1DeleteOptions(grace_period_seconds=0, preconditions={"uid": meta["uid"]}),
            )
        except client.ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("delete %s/%s: %s", meta["namespace"], meta["name"], exc.reason)
                return False
        except Exception as exc:  # the apiserver unreachable
            log.warning("delete %s/%s: %s", meta["namespace"], meta["name"], exc)
            return False
        return True

    def _apply_kwok(self, plural: str, body: dict) -> None:
        meta = body["metadata"]
        body = {"apiVersion": "/".join(KWOK), **body}
        try:
            self.custom.create_namespaced_custom_object(*KWOK, meta["namespace"], plural, body)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
            self.custom.patch_namespaced_custom_object(*KWOK, meta["namespace"], plural, meta["name"], body)

    def _owned_metadata(self, pod: dict) -> dict:
        meta = pod["metadata"]
        return {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}
            ],
        }

    def ensure_exec(self, pod: dict, envs: dict[str, str] | None) -> None:
        """The pod's kwok Exec object: its own work directory, and for a real pod the env that makes
        kwok's exec sessions enter the container."""
        meta = pod["metadata"]
        workdir = self.workdir / "pods" / meta["namespace"] / meta["name"]
        workdir.mkdir(parents=True, exist_ok=True)
        local: dict = {"workDir": str(workdir)}
        if envs:
            local["envs"] = [{"name": k, "value": v} for k, v in envs.items()]
        try:
            self._apply_kwok(
                "execs",
                {
                    "kind": "Exec",
                    "metadata": self._owned_metadata(pod),
                    "spec": {"execs": [{"local": local}]},
                },
            )
        except client.ApiException as exc:  # typically a terminating namespace
            log.info("no Exec object for %s/%s: %s", meta["namespace"], meta["name"], exc.reason)

    def ensure_logs(self, pod: dict, runners: list[ContainerRunner]) -> None:
        logs = [
            {
                "containers": [r.name],
                "logsFile": str(r.log_path),
                "previousLogsFile": str(r.previous_log_path),
                "follow": True,
            }
            for r in runners
        ]
        for runner in runners:
            runner.log_path.touch()
        try:
            self._apply_kwok(
                "logs", {"kind": "Logs", "metadata": self._owned_metadata(pod), "spec": {"logs": logs}}
            )
        except client.ApiException as exc:
            log.info("no Logs object for %s: %s", pod["metadata"]["name"], exc.reason)

    def event(self, pod: dict, reason: str, message: str, kind: str = "Normal") -> None:
        """A core/v1 Event about the pod, as the kubelet records them (best effort)."""
        meta = pod["metadata"]
        now = datetime.datetime.now(datetime.UTC)
        body = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "kind": "Pod",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "apiVersion": "v1",
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": "kubelet", "host": pod["spec"].get("nodeName", "")},
            "firstTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastTimestamp": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "count": 1,
        }
        with contextlib.suppress(Exception):
            self.core.create_namespaced_event(meta["namespace"], body)

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, str] | None:
        try:
            if kind == "secret":
                secret = self.core.read_namespaced_secret(name, namespace)
                values = kenv.secret_values(secret.data)
                values.update(secret.string_data or {})
                return values
            config_map = self.core.read_namespaced_config_map(name, namespace)
            return dict(config_map.data or {})
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    # -- metrics hook (helper D) -------------------------------------------------------------------------

    def pod_samples(self) -> list[dict]:
        """Usage of every running container, per pod: the data a metrics API serves."""
        with self._lock:
            workers = list(self._workers.values())
        samples = []
        for worker in workers:
            containers = []
            for runner in worker.runners:
                container = runner.container
                if container is None:
                    continue
                with contextlib.suppress(Exception):
                    cpu_ns, memory = container.usage()
                    containers.append({"name": runner.name, "cpu_ns": cpu_ns, "memory_bytes": memory})
            if containers:
                meta = worker.pod["metadata"]
                samples.append(
                    {
                        "namespace": worker.namespace,
                        "name": worker.name,
                        "labels": dict(meta.get("labels") or {}),
                        "node": worker.pod["spec"].get("nodeName", ""),
                        "containers": containers,
                    }
                )
        return samples

    def container_stats(self) -> list[ContainerStatsSample]:
        """cgroup counters of every running container: the cAdvisor series (sandbox.kube.agent.exporter)."""
        with self._lock:
            workers = list(self._workers.values())
        found = []
        for worker in workers:
            for runner in worker.runners:
                container = runner.container  # one read: the runner's thread may clear it meanwhile
                if container is None:
                    continue
                try:
                    stats = container.stats()
                except (OSError, ValueError):
                    continue  # exited between the read and now; its groups are gone
                found.append(
                    ContainerStatsSample(
                        namespace=worker.namespace,
                        pod=worker.name,
                        pod_uid=worker.uid,
                        container=runner.name,
                        image=runner.spec.get("image", ""),
                        container_id=runner.container_id,
                        cgroup="/" + container.cgroups.relative,
                        stats=stats,
                    )
                )
        return found

    # -- shutdown --------------------------------------------------------------------------------------

    def shutdown(self, grace: float = 5.0) -> None:
        """Stop every container (SIGTERM, then SIGKILL after ``grace``); the pods stay in the API."""
        self.stop_deadline = time.monotonic() + grace
        self.stopping.set()
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.update(worker.pod)  # wakes it; it sees ``stopping`` and stops its containers
        for worker in workers:
            worker.join(grace + 15)
        self._pool.shutdown(wait=False, cancel_futures=True)


def _in_parallel(calls: list[tuple]) -> None:
    threads = [threading.Thread(target=fn, args=args, daemon=True) for fn, args in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


class _Expired(Exception):
    pass
