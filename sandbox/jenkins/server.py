"""Jenkins stand-in: the REST surface python-jenkins uses, running freestyle jobs' shell steps for real.

State lives under ``root``: ``jobs/<name>/config.xml`` (loaded at start, so templates can be seeded on disk),
``jobs/<name>/builds/<n>/log`` (console logs), ``jobs/<name>/builds/<n>/build.json`` (the build record),
``queue.json`` (queue items, the left ones too) and ``workspace/<name>/<n>/`` (one workspace per build).
Like real Jenkins, a restarted stand-in still answers for earlier builds and queue items: a build that was
running when the stand-in stopped ends ABORTED, and a waiting queue item waits again.
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import secrets
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from sandbox.faults import Fault, Faults
from sandbox.jenkins.config import ConfigError, JobConfig, apply_tree, parse_config, parse_tree, set_disabled
from sandbox.standin_http import DispatchingHandler

JENKINS_VERSION = "2.462.3"
_STOP_GRACE_SECONDS = 5.0
_MAX_LINES_PER_CHUNK = 10_000
_UNSAFE_NAME = re.compile(r"[\\/:?*\"<>|%#;@&!\[\]]")
_COLOR = {
    "SUCCESS": "blue",
    "FAILURE": "red",
    "UNSTABLE": "yellow",
    "ABORTED": "aborted",
    "NOT_BUILT": "notbuilt",
}


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Build:
    job: Job
    number: int
    queue_id: int
    params: list[tuple[str, str]]
    user: str
    log_path: Path
    workspace: Path
    timestamp_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    started: float = field(default_factory=time.monotonic)
    building: bool = True
    result: str | None = None
    duration_ms: int = 0
    process: subprocess.Popen[bytes] | None = None
    aborted: bool = False


@dataclass
class QueueItem:
    id: int
    job: Job
    params: list[tuple[str, str]]
    user: str
    since_ms: int
    ready_at: float
    cancelled: bool = False
    build: Build | None = None

    @property
    def left(self) -> bool:
        return self.cancelled or self.build is not None


@dataclass
class Job:
    name: str
    dir: Path
    config_xml: str
    config: JobConfig
    # A copied job keeps holdOffBuildUntilSave until its config is saved once (JENKINS-25595).
    hold_off: bool = False
    next_build_number: int = 1
    builds: dict[int, Build] = field(default_factory=dict)

    @property
    def buildable(self) -> bool:
        return not self.config.disabled and not self.hold_off


class JenkinsStandin:
    """Serve Jenkins' REST API at 127.0.0.1 and run jobs' ``hudson.tasks.Shell`` steps with bash.

    ``extra_env`` is added to every build's environment (like node properties in real Jenkins).
    ``quiet_period`` is the seconds a queue item waits before it leaves the queue.
    """

    def __init__(
        self,
        root: Path | str,
        user: str,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        quiet_period: float = 0.5,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.user = user
        self.token = token
        self.quiet_period = quiet_period
        self.extra_env = dict(extra_env or {})
        self.crumb = secrets.token_hex(16)
        self.lock = threading.RLock()
        self.jobs: dict[str, Job] = {}
        self.queue: dict[int, QueueItem] = {}
        self._next_queue_id = 1
        self.faults = Faults()
        self._host = host
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)
        (self.root / "workspace").mkdir(parents=True, exist_ok=True)
        for config_file in sorted((self.root / "jobs").glob("*/config.xml")):
            self._load_job(config_file.parent)
        self._load_queue()

    # -- lifecycle ---------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("stand-in not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def start(self) -> str:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._httpd = ThreadingHTTPServer((self._host, self._port), handler)
        self._httpd.daemon_threads = True
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._httpd.serve_forever, name="jenkins-standin-http", daemon=True),
            threading.Thread(target=self._schedule_loop, name="jenkins-standin-queue", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self.url

    def serve_forever(self) -> None:
        if self._httpd is None:
            self.start()
        self._threads[0].join()

    def stop(self) -> None:
        """Stop serving and kill every running build's process group."""
        self._stopping.set()
        self._wake.set()
        with self.lock:
            running = [b for job in self.jobs.values() for b in job.builds.values() if b.building]
        for build in running:
            self.abort(build)
        for build in running:
            deadline = time.monotonic() + _STOP_GRACE_SECONDS * 2
            while build.building and time.monotonic() < deadline:
                time.sleep(0.05)
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # -- fault injection ---------------------------------------------------------------------------------

    def inject_fault(
        self, pattern: str, status: int = 500, count: int = 1, method: str | None = None, *, retry_after=None
    ) -> None:
        """See ``Faults.inject``: answers before anything happens."""
        self.faults.inject(pattern, status, count, method, retry_after=retry_after)

    def clear_faults(self) -> None:
        self.faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        return self.faults.take(method, path)

    # -- jobs --------------------------------------------------------------------------------------------

    def _load_job(self, job_dir: Path) -> Job:
        xml = (job_dir / "config.xml").read_text()
        number_file = job_dir / "nextBuildNumber"
        job = Job(job_dir.name, job_dir, xml, parse_config(xml))
        if number_file.is_file():
            job.next_build_number = int(number_file.read_text().strip() or 1)
        for record in sorted((job_dir / "builds").glob("*/build.json")):
            build = self._load_build(job, record)
            job.builds[build.number] = build
        self.jobs[job.name] = job
        return job

    def _load_build(self, job: Job, record: Path) -> Build:
        data = json.loads(record.read_text())
        build = Build(
            job,
            data["number"],
            data["queue_id"],
            [tuple(pair) for pair in data["params"]],
            data["user"],
            record.parent / "log",
            self.root / "workspace" / job.name / str(data["number"]),
            timestamp_ms=data["timestamp_ms"],
            building=False,
            result=data["result"],
            duration_ms=data["duration_ms"],
            aborted=data["aborted"],
        )
        if data["building"]:
            # Its process died with the previous stand-in: Jenkins ends such a build ABORTED.
            with build.log_path.open("ab") as log:
                log.write(b"Build was aborted: the stand-in restarted\nFinished: ABORTED\n")
            build.result, build.aborted = "ABORTED", True
            build.duration_ms = max(0, int(time.time() * 1000) - build.timestamp_ms)
            self._save_build(build)
        return build

    @staticmethod
    def _write_json(path: Path, payload: Any) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(path)  # atomic: a stand-in killed mid-write leaves the previous record

    def _save_build(self, build: Build) -> None:
        record = {
            "number": build.number,
            "queue_id": build.queue_id,
            "params": build.params,
            "user": build.user,
            "timestamp_ms": build.timestamp_ms,
            "building": build.building,
            "result": build.result,
            "duration_ms": build.duration_ms,
            "aborted": build.aborted,
        }
        self._write_json(build.log_path.parent / "build.json", record)

    def _save_queue(self) -> None:
        """Called with the lock held after every queue change."""
        items = [
            {
                "id": item.id,
                "job": item.job.name,
                "params": item.params,
                "user": item.user,
                "since_ms": item.since_ms,
                "cancelled": item.cancelled,
                "build": item.build.number if item.build else None,
            }
            for item in self.queue.values()
            if item.job.name in self.jobs
        ]
        self._write_json(self.root / "queue.json", {"next_id": self._next_queue_id, "items": items})

    def _load_queue(self) -> None:
        path = self.root / "queue.json"
        if not path.is_file():
            return
        data = json.loads(path.read_text())
        self._next_queue_id = data["next_id"]
        for entry in data["items"]:
            job = self.jobs.get(entry["job"])
            if job is None:
                continue
            build = job.builds.get(entry["build"]) if entry["build"] is not None else None
            item = QueueItem(
                entry["id"],
                job,
                [tuple(pair) for pair in entry["params"]],
                entry["user"],
                entry["since_ms"],
                time.monotonic() + self.quiet_period,
                cancelled=entry["cancelled"],
                build=build,
            )
            self.queue[item.id] = item

    def create_job(self, name: str, xml: str, hold_off: bool = False) -> Job:
        if not name.strip() or _UNSAFE_NAME.search(name) or name in (".", ".."):
            raise HttpError(400, f"‘{name}’ is an unsafe name")
        config = parse_config(xml)
        with self.lock:
            if name in self.jobs:
                raise HttpError(400, f"A job already exists with the name ‘{name}’")
            job_dir = self.root / "jobs" / name
            job_dir.mkdir(parents=True, exist_ok=True)
            (job_dir / "config.xml").write_text(xml)
            job = Job(name, job_dir, xml, config, hold_off=hold_off)
            self.jobs[name] = job
            return job

    def save_config(self, job: Job, xml: str) -> None:
        config = parse_config(xml)
        with self.lock:
            (job.dir / "config.xml").write_text(xml)
            job.config_xml, job.config, job.hold_off = xml, config, False

    def delete_job(self, job: Job) -> None:
        with self.lock:
            running = [b for b in job.builds.values() if b.building]
        for build in running:
            self.abort(build)
        with self.lock:
            self.jobs.pop(job.name, None)
            for item in self.queue.values():
                if item.job is job and not item.left:
                    item.cancelled = True
            self._save_queue()
        for child in sorted(job.dir.rglob("*"), reverse=True):
            child.unlink() if child.is_file() or child.is_symlink() else child.rmdir()
        job.dir.rmdir()

    # -- queue and builds --------------------------------------------------------------------------------

    def schedule(self, job: Job, raw_params: dict[str, str] | None, user: str) -> QueueItem:
        if not job.buildable:
            raise HttpError(409, f"{job.name} is not buildable")
        defs = job.config.params
        if raw_params is not None and not defs:
            raise HttpError(500, f"{job.name} is not parameterized")
        # Jenkins drops values for undefined parameters (SECURITY-170) and fills in defaults for missing ones.
        params = [(d.name, (raw_params or {}).get(d.name, d.default)) for d in defs]
        with self.lock:
            for item in self.queue.values():
                if item.job is job and not item.left and item.params == params:
                    return item  # Jenkins merges identical queued requests
            item = QueueItem(
                self._next_queue_id,
                job,
                params,
                user,
                int(time.time() * 1000),
                time.monotonic() + self.quiet_period,
            )
            self._next_queue_id += 1
            self.queue[item.id] = item
            self._save_queue()
        self._wake.set()
        return item

    def cancel(self, item: QueueItem) -> None:
        with self.lock:
            if not item.left:
                item.cancelled = True
                self._save_queue()

    def _schedule_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(0.05)
            self._wake.clear()
            now = time.monotonic()
            with self.lock:
                for item in self.queue.values():
                    if item.left or item.ready_at > now or self._blocked(item):
                        continue
                    self._start_build(item)

    def _blocked(self, item: QueueItem) -> bool:
        return not item.job.config.concurrent and any(b.building for b in item.job.builds.values())

    def _start_build(self, item: QueueItem) -> None:
        job = item.job
        number = job.next_build_number
        job.next_build_number += 1
        (job.dir / "nextBuildNumber").write_text(f"{job.next_build_number}\n")
        build_dir = job.dir / "builds" / str(number)
        build_dir.mkdir(parents=True, exist_ok=True)
        workspace = self.root / "workspace" / job.name / str(number)
        workspace.mkdir(parents=True, exist_ok=True)
        build = Build(job, number, item.id, item.params, item.user, build_dir / "log", workspace)
        # Written before the build is visible: python-jenkins treats an empty console log as a missing build.
        build.log_path.write_bytes(
            f"Started by user {build.user}\nRunning as SYSTEM\nBuilding in workspace {workspace}\n".encode()
        )
        job.builds[number] = build
        item.build = build
        self._save_build(build)
        self._save_queue()
        threading.Thread(
            target=self._run_build, args=(build,), name=f"build-{job.name}-{number}", daemon=True
        ).start()

    def _build_env(self, build: Build) -> dict[str, str]:
        job_url = f"{self.url}job/{quote(build.job.name)}/"
        env = dict(os.environ)
        env.update(self.extra_env)
        env.update(
            {
                "BUILD_NUMBER": str(build.number),
                "BUILD_ID": str(build.number),
                "BUILD_DISPLAY_NAME": f"#{build.number}",
                "BUILD_TAG": f"jenkins-{build.job.name}-{build.number}",
                "BUILD_URL": f"{job_url}{build.number}/",
                "JOB_NAME": build.job.name,
                "JOB_BASE_NAME": build.job.name,
                "JOB_URL": job_url,
                "JENKINS_URL": self.url,
                "NODE_NAME": "built-in",
                "EXECUTOR_NUMBER": "0",
                "WORKSPACE": str(build.workspace),
            }
        )
        env.update(dict(build.params))  # parameters reach the shell as environment variables only
        return env

    def _run_build(self, build: Build) -> None:
        env = self._build_env(build)
        result = "SUCCESS"
        with build.log_path.open("ab", buffering=0) as log:
            if build.job.config.job_class != "hudson.model.FreeStyleProject":
                log.write(b"ERROR: the stand-in only runs freestyle shell steps, not Pipeline scripts\n")
                result = "FAILURE"
            for index, command in enumerate(build.job.config.shell_steps):
                if result != "SUCCESS" or build.aborted:
                    break
                script = build.log_path.parent / f"step-{index}.sh"
                script.write_text(command)
                # Like Jenkins: a shebang picks the interpreter, otherwise the shell runs with -xe.
                if command.startswith("#!"):
                    script.chmod(0o700)
                    argv = [str(script)]
                else:
                    argv = ["/bin/bash", "-xe", str(script)]
                log.write(f"[{build.job.name}] $ {' '.join(argv)}\n".encode())
                with self.lock:
                    if build.aborted:
                        break
                    build.process = subprocess.Popen(
                        argv,
                        cwd=build.workspace,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # own process group, so stop kills the whole tree
                    )
                code = build.process.wait()
                if code != 0 and not build.aborted:
                    log.write(b"Build step 'Execute shell' marked build as failure\n")
                    result = "FAILURE"
            if build.aborted:
                log.write(f"Build was aborted\nAborted by {self.user}\n".encode())
                result = "ABORTED"
            log.write(f"Finished: {result}\n".encode())
        with self.lock:
            build.result = result
            build.duration_ms = int((time.monotonic() - build.started) * 1000)
            build.building = False
            build.process = None
            self._save_build(build)
        self._wake.set()

    def abort(self, build: Build) -> None:
        with self.lock:
            if not build.building:
                return
            build.aborted = True
            proc = build.process
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        threading.Thread(target=self._kill_after_grace, args=(proc,), daemon=True).start()

    @staticmethod
    def _kill_after_grace(proc: subprocess.Popen[bytes]) -> None:
        try:
            proc.wait(_STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        # The group may outlive its leader (e.g. a backgrounded child), so signal it either way.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # -- JSON shapes -------------------------------------------------------------------------------------

    def job_url(self, job: Job) -> str:
        return f"{self.url}job/{quote(job.name)}/"

    def build_ref(self, build: Build | None) -> dict[str, Any] | None:
        if build is None:
            return None
        return {
            "_class": "hudson.model.FreeStyleBuild",
            "number": build.number,
            "url": f"{self.job_url(build.job)}{build.number}/",
        }

    def color(self, job: Job) -> str:
        if job.config.disabled:
            return "disabled"
        done = [b for b in job.builds.values() if not b.building]
        base = _COLOR.get(max(done, key=lambda b: b.number).result or "", "notbuilt") if done else "notbuilt"
        return f"{base}_anime" if any(b.building for b in job.builds.values()) else base

    @staticmethod
    def find_build(job: Job, ident: str) -> Build | None:
        ordered = sorted(job.builds.values(), key=lambda b: b.number, reverse=True)
        selectors = {
            "lastBuild": lambda b: True,
            "lastCompletedBuild": lambda b: not b.building,
            "lastSuccessfulBuild": lambda b: b.result == "SUCCESS",
            "lastFailedBuild": lambda b: b.result == "FAILURE",
            "lastUnsuccessfulBuild": lambda b: not b.building and b.result != "SUCCESS",
        }
        if ident in selectors:
            return next((b for b in ordered if selectors[ident](b)), None)
        return job.builds.get(int(ident)) if ident.isdigit() else None

    def job_json(self, job: Job) -> dict[str, Any]:
        ordered = sorted(job.builds.values(), key=lambda b: b.number, reverse=True)
        waiting = next((q for q in self.queue.values() if q.job is job and not q.left), None)
        defs = [
            {
                "_class": d.kind,
                "name": d.name,
                "description": d.description,
                "type": d.kind.rsplit(".", 1)[1],
                "defaultParameterValue": {"_class": d.value_class, "name": d.name, "value": d.default},
            }
            for d in job.config.params
        ]
        properties = (
            [{"_class": "hudson.model.ParametersDefinitionProperty", "parameterDefinitions": defs}]
            if defs
            else []
        )
        return {
            "_class": job.config.job_class,
            "actions": [{}],
            "description": job.config.description,
            "displayName": job.name,
            "displayNameOrNull": None,
            "fullDisplayName": job.name,
            "fullName": job.name,
            "name": job.name,
            "url": self.job_url(job),
            "buildable": job.buildable,
            "builds": [self.build_ref(b) for b in ordered[:100]],
            "allBuilds": [self.build_ref(b) for b in ordered],
            "color": self.color(job),
            "firstBuild": self.build_ref(ordered[-1] if ordered else None),
            "healthReport": [],
            "inQueue": waiting is not None,
            "keepDependencies": False,
            "lastBuild": self.build_ref(self.find_build(job, "lastBuild")),
            "lastCompletedBuild": self.build_ref(self.find_build(job, "lastCompletedBuild")),
            "lastFailedBuild": self.build_ref(self.find_build(job, "lastFailedBuild")),
            "lastStableBuild": self.build_ref(self.find_build(job, "lastSuccessfulBuild")),
            "lastSuccessfulBuild": self.build_ref(self.find_build(job, "lastSuccessfulBuild")),
            "lastUnstableBuild": None,
            "lastUnsuccessfulBuild": self.build_ref(self.find_build(job, "lastUnsuccessfulBuild")),
            "nextBuildNumber": job.next_build_number,
            "property": properties,
            "queueItem": {"_class": "hudson.model.Queue$WaitingItem", "id": waiting.id} if waiting else None,
            "concurrentBuild": job.config.concurrent,
            "disabled": job.config.disabled,
            "scm": {"_class": "hudson.scm.NullSCM"},
        }

    def _parameter_actions(self, params: list[tuple[str, str]], user: str) -> list[dict[str, Any]]:
        cause = {
            "_class": "hudson.model.CauseAction",
            "causes": [
                {
                    "_class": "hudson.model.Cause$UserIdCause",
                    "shortDescription": f"Started by user {user}",
                    "userId": user,
                    "userName": user,
                }
            ],
        }
        if not params:
            return [cause]
        values = [{"_class": "hudson.model.StringParameterValue", "name": n, "value": v} for n, v in params]
        return [{"_class": "hudson.model.ParametersAction", "parameters": values}, cause]

    def build_json(self, build: Build) -> dict[str, Any]:
        done = [b.duration_ms for b in build.job.builds.values() if b.result == "SUCCESS"]
        return {
            "_class": "hudson.model.FreeStyleBuild",
            "actions": [*self._parameter_actions(build.params, build.user), {}],
            "artifacts": [],
            "building": build.building,
            "description": None,
            "displayName": f"#{build.number}",
            "duration": build.duration_ms,
            "estimatedDuration": int(sum(done) / len(done)) if done else -1,
            "executor": {} if build.building else None,
            "fullDisplayName": f"{build.job.name} #{build.number}",
            "id": str(build.number),
            "keepLog": False,
            "number": build.number,
            "queueId": build.queue_id,
            "result": build.result,
            "timestamp": build.timestamp_ms,
            "url": f"{self.job_url(build.job)}{build.number}/",
            "builtOn": "",
            "changeSet": {"_class": "hudson.scm.EmptyChangeLogSet", "items": [], "kind": None},
            "culprits": [],
        }

    def queue_item_json(self, item: QueueItem) -> dict[str, Any]:
        job = item.job
        payload: dict[str, Any] = {
            "actions": self._parameter_actions(item.params, item.user),
            "blocked": False,
            "buildable": False,
            "id": item.id,
            "inQueueSince": item.since_ms,
            "params": "".join(f"\n{n}={v}" for n, v in item.params),
            "stuck": False,
            "task": {
                "_class": job.config.job_class,
                "name": job.name,
                "url": self.job_url(job),
                "color": self.color(job),
            },
            "url": f"queue/item/{item.id}/",
            "why": None,
        }
        if item.left:
            payload.update(
                {
                    "_class": "hudson.model.Queue$LeftItem",
                    "cancelled": item.cancelled,
                    "executable": self.build_ref(item.build),
                }
            )
        elif self._blocked(item):
            running = next(b for b in job.builds.values() if b.building)
            payload.update(
                {
                    "_class": "hudson.model.Queue$BlockedItem",
                    "blocked": True,
                    "why": f"Build #{running.number} is already in progress",
                }
            )
        else:
            remaining = max(item.ready_at - time.monotonic(), 0.0)
            payload.update(
                {
                    "_class": "hudson.model.Queue$WaitingItem",
                    "why": f"In the quiet period. Expires in {remaining:.1f} sec",
                }
            )
        return payload


class _Handler(DispatchingHandler):
    standin: JenkinsStandin
    protocol_version = "HTTP/1.1"
    server_version = "Jetty(10.0.20)"

    # -- plumbing ----------------------------------------------------------------------------------------

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("X-Jenkins", JENKINS_VERSION)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, payload: Any, status: int = 200) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json;charset=utf-8")

    def _send_html(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = f"<html><head><title>Jenkins</title></head><body><p>{message}</p></body></html>".encode()
        self._send(status, body, "text/html;charset=utf-8", headers)

    def _redirect(self, location: str) -> None:
        self._send(302, b"", "text/html;charset=utf-8", {"Location": location})

    def _authenticate(self) -> str:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Basic "):
            # Anonymous users have no Overall/Read here: 403, like a secured Jenkins (see contracts 1.1).
            raise HttpError(403, "Authentication required")
        try:
            user, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError as exc:
            raise HttpError(401, "Invalid authorization header") from exc
        st = self.standin
        if user != st.user or not hmac.compare_digest(secret.encode(), st.token.encode()):
            raise HttpError(401, f"Invalid password/token for user: {user}")
        return user

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fault = self.standin.take_fault(method, self.path)
        if fault is not None:
            self._send_html(fault.status, f"Injected fault {fault.status} for {split.path}", fault.headers())
            return
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        segments = [unquote(s) for s in split.path.strip("/").split("/") if s]
        try:
            user = self._authenticate()
            self._route(method, segments, query, body, user)
        except HttpError as exc:
            self._send_html(
                exc.status, exc.message, {"X-Error": exc.message.encode("ascii", "replace").decode()}
            )
        except ConfigError as exc:
            self._send_html(500, str(exc), {"X-Error": "Failed to parse config.xml"})
        except (ValueError, KeyError) as exc:
            # Malformed tree=, ids or admin payloads: a client error, not a dropped connection.
            self._send_html(400, f"Bad request: {exc}")

    # -- routes ------------------------------------------------------------------------------------------

    def _route(self, method: str, seg: list[str], query: dict[str, str], body: bytes, user: str) -> None:
        st = self.standin
        tree = parse_tree(query["tree"]) if query.get("tree") else None
        if not seg or seg == ["api", "json"]:
            if seg and method == "GET":
                self._send_json(apply_tree(self._root_json(), tree))
            else:
                self._send_html(200, "Dashboard [Jenkins]")
        elif seg == ["crumbIssuer", "api", "json"]:
            self._send_json(
                {
                    "_class": "hudson.security.csrf.DefaultCrumbIssuer",
                    "crumb": st.crumb,
                    "crumbRequestField": "Jenkins-Crumb",
                }
            )
        elif seg == ["me", "api", "json"]:
            self._send_json(
                {
                    "_class": "hudson.model.User",
                    "absoluteUrl": f"{st.url}user/{user}",
                    "id": user,
                    "fullName": user,
                    "description": None,
                }
            )
        elif seg[:2] == ["_standin", "faults"]:
            self._faults(method, body)
        elif seg == ["createItem"] and method == "POST":
            self._create_item(query, body)
        elif seg[:1] == ["queue"]:
            self._queue(method, seg[1:], query, tree)
        elif seg[:1] == ["job"] and len(seg) >= 2:
            job = st.jobs.get(seg[1])
            if job is None or (len(seg) > 2 and seg[2] == "job"):
                raise HttpError(404, "Not Found")  # folders are not modelled
            self._job(method, job, seg[2:], query, body, tree, user)
        else:
            raise HttpError(404, "Not Found")

    def _root_json(self) -> dict[str, Any]:
        st = self.standin
        with st.lock:
            jobs = [
                {"_class": j.config.job_class, "name": j.name, "url": st.job_url(j), "color": st.color(j)}
                for j in sorted(st.jobs.values(), key=lambda j: j.name)
            ]
        return {
            "_class": "hudson.model.Hudson",
            "mode": "NORMAL",
            "nodeName": "",
            "useSecurity": True,
            "jobs": jobs,
            "url": st.url,
        }

    def _faults(self, method: str, body: bytes) -> None:
        if method == "DELETE":
            self.standin.clear_faults()
        elif method == "POST":
            spec = json.loads(body or b"{}")
            self.standin.inject_fault(
                spec["pattern"],
                int(spec.get("status", 500)),
                int(spec.get("count", 1)),
                spec.get("method"),
                retry_after=spec.get("retry_after"),
            )
        else:
            raise HttpError(405, "Method Not Allowed")
        self._send_json({"ok": True})

    def _create_item(self, query: dict[str, str], body: bytes) -> None:
        st = self.standin
        name = query.get("name", "")
        if query.get("mode") == "copy":
            source = st.jobs.get(query.get("from", ""))
            if source is None:
                raise HttpError(400, f"No such job: {query.get('from', '')}")
            job = st.create_job(name, source.config_xml, hold_off=True)
            self._redirect(st.job_url(job))
            return
        if not body.strip():
            raise HttpError(400, "No config.xml in the request body")
        st.create_job(name, body.decode())
        self._send(200, b"", "text/html;charset=utf-8")

    def _queue(self, method: str, rest: list[str], query: dict[str, str], tree: Any) -> None:
        st = self.standin
        if method == "POST" and rest == ["cancelItem"]:
            item = st.queue.get(int(query["id"])) if query.get("id", "").isdigit() else None
            if item is None:
                raise HttpError(404, "Not Found")
            st.cancel(item)
            self._send(204, b"", "text/html;charset=utf-8")
        elif method == "GET" and rest == ["api", "json"]:
            with st.lock:
                items = [st.queue_item_json(q) for q in st.queue.values() if not q.left]
            self._send_json(
                apply_tree({"_class": "hudson.model.Queue", "discoverableItems": [], "items": items}, tree)
            )
        elif (
            method == "GET"
            and len(rest) == 4
            and rest[0] == "item"
            and rest[2:] == ["api", "json"]
            and rest[1].isdigit()
        ):
            item = st.queue.get(int(rest[1]))
            if item is None:
                raise HttpError(404, "Not Found")
            with st.lock:
                self._send_json(apply_tree(st.queue_item_json(item), tree))
        else:
            raise HttpError(404, "Not Found")

    def _job(
        self, method: str, job: Job, rest: list[str], query: dict[str, str], body: bytes, tree: Any, user: str
    ) -> None:
        st = self.standin
        if rest == ["api", "json"] and method == "GET":
            with st.lock:
                payload = st.job_json(job)
            if tree is None:
                payload.pop("allBuilds")  # like Jenkins: allBuilds is only reachable through tree=
            self._send_json(apply_tree(payload, tree))
        elif rest == ["config.xml"] and method == "GET":
            self._send(200, job.config_xml.encode(), "application/xml;charset=utf-8")
        elif rest == ["config.xml"] and method == "POST":
            st.save_config(job, body.decode())
            self._send(200, b"", "text/html;charset=utf-8")
        elif rest in (["build"], ["buildWithParameters"]) and method == "POST":
            params = None
            if rest == ["buildWithParameters"]:
                params = {k: v for k, v in query.items() if k not in ("token", "delay", "cause")}
                if "form" in self.headers.get("Content-Type", ""):
                    params.update(
                        {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
                    )
            item = st.schedule(job, params, user)
            self._send(201, b"", "text/html;charset=utf-8", {"Location": f"{st.url}queue/item/{item.id}/"})
        elif rest in (["enable"], ["disable"]) and method == "POST":
            st.save_config(job, set_disabled(job.config_xml, rest == ["disable"]))
            self._redirect(st.job_url(job))
        elif rest == ["doDelete"] and method == "POST":
            st.delete_job(job)
            self._redirect(st.url)
        elif not rest and method in ("GET", "HEAD"):
            self._send_html(200, f"{job.name} [Jenkins]")
        elif rest:
            with st.lock:
                build = st.find_build(job, rest[0])
            if build is None:
                raise HttpError(404, "Not Found")
            self._build(method, build, rest[1:], query, tree)
        else:
            raise HttpError(405, "Method Not Allowed")

    def _build(self, method: str, build: Build, rest: list[str], query: dict[str, str], tree: Any) -> None:
        st = self.standin
        if rest == ["api", "json"] and method == "GET":
            with st.lock:
                self._send_json(apply_tree(st.build_json(build), tree))
        elif rest == ["consoleText"] and method == "GET":
            self._send(200, build.log_path.read_bytes(), "text/plain;charset=utf-8")
        elif rest == ["logText", "progressiveText"] and method == "GET":
            self._progressive(build, query)
        elif rest == ["stop"] and method == "POST":
            st.abort(build)
            self._redirect(f"{st.job_url(build.job)}{build.number}/")
        elif not rest and method in ("GET", "HEAD"):
            self._send_html(200, f"{build.job.name} #{build.number} [Jenkins]")
        else:
            raise HttpError(404, "Not Found")

    def _progressive(self, build: Build, query: dict[str, str]) -> None:
        # Mirrors stapler's LargeText.doProgressText: X-Text-Size is the next byte offset, X-More-Data only
        # while the log can still grow, and only whole lines are sent until the build has finished.
        complete = not build.building  # read before the log so a finishing build never loses its tail
        data = build.log_path.read_bytes() if build.log_path.exists() else b""
        try:
            start = int(query.get("start", "0"))
        except ValueError:
            start = 0
        if start < 0 or start > len(data):
            start = 0
        chunk = data[start:]
        if not complete:
            chunk = chunk[: chunk.rfind(b"\n") + 1]
        lines = chunk.split(b"\n")
        if len(lines) > _MAX_LINES_PER_CHUNK + 1:
            chunk = b"\n".join(lines[:_MAX_LINES_PER_CHUNK]) + b"\n"
            complete = False
        headers = {"X-Text-Size": str(start + len(chunk))}
        if not complete:
            headers["X-More-Data"] = "true"
        self._send(200, chunk, "text/plain;charset=UTF-8", headers)
