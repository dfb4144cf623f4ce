"""The web terminal: who may open one on which pod, the session rows, the recordings, and the bridge
that pumps one Kubernetes exec stream between a worker thread and the browser's WebSocket.

The exec stream (``kubernetes.stream``) is blocking, so each session runs one thread that owns the
exec socket and the recording file; the consumer only hands it keystrokes and resizes through a
queue and a wake-up pipe, and gets output back through a callback. Nothing else touches either.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import queue
import re
import select
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import websocket
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import close_old_connections, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from clusters.models import TerminalSession
from clusters.selectors.environments import EnvironmentRef, environment_get, is_own_pod
from clusters.services import terminal_commands
from clusters.services.terminal_stream import (
    ENTER_KEYS,
    STATUS_PROMPT_COMMAND,
    EchoGate,
    LineEditor,
    StatusScanner,
    is_printable,
    split_keys,
)
from integrations.errors import IntegrationError
from integrations.kubernetes.client import KubeClient
from observability.services import audit_record
from opsportal import metrics
from projects.access import Action
from projects.choices import Environment
from projects.models import Project, UserProfile

logger = logging.getLogger(__name__)

MARKER_VARIABLE = "OPSPORTAL_TERMINAL"
# bash when the image has it, sh otherwise; a terminal type for line editing if the image sets none.
# Every process started from the shell inherits the session's marker, which is how hang_up finds them.
# bash also prints an invisible exit-status marker before each prompt, for the command audit; an
# image whose bashrc sets its own PROMPT_COMMAND replaces it (the exit status is then unknown).
SHELL_SCRIPT = (
    f'export {MARKER_VARIABLE}="$1"; [ -n "$TERM" ] || export TERM=xterm-256color; '
    f"PROMPT_COMMAND='{STATUS_PROMPT_COMMAND}'; export PROMPT_COMMAND; "
    "command -v bash >/dev/null && exec bash || exec sh"
)
# What a closing terminal does on a VM: SIGHUP to what the session started (vim, less, top end; a job
# started with nohup survives, as it would there). A separate exec sends it, because an exec'd process
# outlives its stream (kubelet and kwok alike) and keys cannot stop a full-screen program. Shells are
# spared the HUP: one without job control forwards it to its own process group, which under kwok is
# kwok's. They are ended with keys once back at their prompt, or with "KILL" as the last resort.
HANG_UP_SCRIPT = (
    "for d in /proc/[0-9]*; do "
    'if tr "\\000" "\\n" < "$d/environ" 2>/dev/null | grep -qxF "$1"; then '
    'case "$2:$(cat "$d/comm")" in HUP:bash|HUP:sh|HUP:dash|HUP:ash|HUP:zsh|HUP:ksh|HUP:mksh) ;; '
    '*) kill -"$2" "${d#/proc/}";; esac; fi; '
    "done 2>/dev/null; exit 0"
)
HANG_UP_EXEC_TIMEOUT = 5.0


def shell_command(marker: str) -> list[str]:
    return ["/bin/sh", "-c", SHELL_SCRIPT, "sh", marker]


STDIN, STDOUT, STDERR, STATUS, RESIZE = 0, 1, 2, 3, 4
OUTPUT_CHUNK = 64 * 1024
MAX_COLS, MAX_ROWS = 1000, 500
# The fallback when the hang-up exec cannot run (no /proc, tr or grep in the image): sent in turn until
# the shell exits: interrupt, end-of-input, and once more for a nested shell.
HANG_UP_KEYS = (b"\x03", b"\x04", b"\x04", b"exit\r")
HANG_UP_WAIT = 3.0
# Sent instead of a refused line's Enter: Ctrl-E Ctrl-U empties the line under readline (end, kill to
# start) and in a cooked tty (Ctrl-U kills the whole line, Ctrl-E with it), then Enter on the empty
# line brings a fresh prompt. Ctrl-C would be simpler but reaches no shell whose session lacks job
# control, and ends a foreground program that reads lines.
CLEAR_LINE = "\x05\x15\r"


class TerminalRefused(Exception):
    """The terminal cannot be opened; ``message`` is shown to the user, ``code`` closes the socket."""

    def __init__(self, message: str, code: int = 4403) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Target:
    project: Project
    environment: str
    cluster_id: int
    cluster_name: str
    namespace: str
    pod: str
    container: str


def terminal_action(environment: str) -> Action:
    return Action.TERMINAL_PROD if environment == Environment.PROD else Action.TERMINAL_TEST


# --- who may open what -----------------------------------------------------------------------------


def project_pods(ref: EnvironmentRef) -> list:
    """The environment's own pods (the only ones a terminal may open)."""
    with ref.client() as kube:
        return kube.list_pods(ref.namespace, label_selector=ref.label_selector)


def terminal_target(user, *, project_name: str, environment: str, pod: str, container: str = "") -> Target:
    """Check everything before a terminal opens; raise TerminalRefused (or Http404) otherwise.

    Access is environment_get's (404 for a non-member, 403 without the terminal right of that
    environment: viewers, testers, prod without ops or the prod grant). The pod is read from the
    environment's own namespace and must belong to the environment (is_own_pod), so a pod name from
    the browser can never reach another project's or another environment's pod.
    """
    try:
        ref = environment_get(
            user=user, name=project_name, environment=environment, action=terminal_action(environment)
        )
    except PermissionDenied as exc:
        raise TerminalRefused(str(exc), 4403) from None
    if not pod:
        raise TerminalRefused("Choose a pod.", 4400)
    try:
        with ref.client() as kube:
            obj = kube.get("Pod", ref.namespace, pod)
    except IntegrationError as exc:
        raise TerminalRefused(f"The cluster cannot be reached: {exc}", 4502) from None
    if not is_own_pod(ref, obj):
        raise TerminalRefused(f"No pod {pod} of project {ref.project.name} in {environment}.", 4404)
    containers = [c.get("name") for c in (obj.get("spec") or {}).get("containers") or []]
    container = container or (containers[0] if containers else "")
    if container not in containers:
        raise TerminalRefused(f"Pod {pod} has no container {container}.", 4404)
    if (obj.get("status") or {}).get("phase") != "Running":
        raise TerminalRefused(f"Pod {pod} is not running.", 4409)
    return Target(
        project=ref.project,
        environment=environment,
        cluster_id=ref.environment.cluster_id,
        cluster_name=ref.environment.cluster.name,
        namespace=ref.namespace,
        pod=pod,
        container=container,
    )


# --- sessions --------------------------------------------------------------------------------------


def session_open(
    *, user, target: Target, width: int, height: int, remote_addr: str | None = None
) -> TerminalSession:
    """Create the session row (and its audit event), unless the user has too many open already."""
    limit = settings.TERMINAL_MAX_SESSIONS_PER_USER
    # Rows a crashed server left open must not hold the user's slots until the next beat task.
    sessions_reap_stale(user=user)
    with transaction.atomic():
        # Serialise one user's opens so that concurrent tabs cannot all pass the count.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        open_count = TerminalSession.objects.filter(user=user, ended_at__isnull=True).count()
        if open_count >= limit:
            raise TerminalRefused(
                f"You already have {open_count} open terminals (at most {limit}); close one first.", 4429
            )
        started = timezone.now()
        session = TerminalSession.objects.create(
            user=user,
            username=user.get_username(),
            project=target.project,
            environment=target.environment,
            cluster_name=target.cluster_name,
            namespace=target.namespace,
            pod=target.pod,
            container=target.container,
            width=width,
            height=height,
            remote_addr=remote_addr,
            recording=f"{started:%Y/%m/%d}/{uuid.uuid4().hex}.cast",
        )
        audit_record(
            actor=user,
            verb="terminal.open",
            target=session,
            project=target.project,
            changes={
                "environment": target.environment,
                "namespace": target.namespace,
                "pod": target.pod,
                "container": target.container,
            },
            remote_addr=remote_addr,
        )
    return session


def session_close(
    *, session_id: int, reason: str, bytes_in: int, bytes_out: int, by_system: bool = False
) -> TerminalSession:
    """End the session once; a second call changes nothing. Keystrokes never reach the audit."""
    with transaction.atomic():
        session = TerminalSession.objects.select_for_update().select_related("user").get(pk=session_id)
        if session.ended_at is not None:
            return session
        session.ended_at = timezone.now()
        session.end_reason = reason[:255]
        session.bytes_in = bytes_in
        session.bytes_out = bytes_out
        session.save(update_fields=["ended_at", "end_reason", "bytes_in", "bytes_out"])
        audit_record(
            actor=None if by_system else session.user,
            verb="terminal.close",
            target=session,
            project=session.project,
            changes={
                "reason": session.end_reason,
                "duration_seconds": round(session.duration.total_seconds(), 3),
                "bytes_in": bytes_in,
                "bytes_out": bytes_out,
            },
            remote_addr=session.remote_addr,
        )
    return session


def session_heartbeat(*, session_id: int) -> bool:
    """Mark the session alive; False when it has been ended elsewhere (the relay should then stop)."""
    still_open = TerminalSession.objects.filter(pk=session_id, ended_at__isnull=True)
    return bool(still_open.update(last_seen_at=timezone.now()))


LOST_REASON = "lost: the server holding the session stopped without closing it"


def sessions_reap_stale(*, user=None, now=None) -> int:
    """End open sessions whose relay has missed three heartbeats: the process that held them is gone
    (a crashed or killed Daphne), so nothing else will ever close them."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=3 * settings.TERMINAL_HEARTBEAT_SECONDS)
    stale = TerminalSession.objects.filter(ended_at__isnull=True, last_seen_at__lt=cutoff)
    if user is not None:
        stale = stale.filter(user=user)
    reaped = 0
    for session in stale.only("pk", "bytes_in", "bytes_out"):
        closed = session_close(
            session_id=session.pk,
            reason=LOST_REASON,
            bytes_in=session.bytes_in,
            bytes_out=session.bytes_out,
            by_system=True,
        )
        reaped += closed.end_reason == LOST_REASON
    if reaped:
        logger.warning("Ended %d terminal session(s) whose server stopped without closing them", reaped)
    return reaped


def recordings_prune(*, now=None) -> int:
    """Delete recordings older than the retention period and mark their rows; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.TERMINAL_RECORDING_RETENTION_DAYS)
    old = TerminalSession.objects.filter(
        started_at__lt=cutoff, ended_at__isnull=False, recording_deleted_at__isnull=True
    )
    pruned = 0
    for session in old.only("pk", "recording"):
        # Claim the row first: a concurrent run that loses the claim leaves the file alone.
        if not TerminalSession.objects.filter(pk=session.pk, recording_deleted_at__isnull=True).update(
            recording_deleted_at=now
        ):
            continue
        if session.recording:
            (Path(settings.TERMINAL_RECORDINGS_DIR) / session.recording).unlink(missing_ok=True)
        pruned += 1
    return pruned


# --- recording -------------------------------------------------------------------------------------


class Recorder:
    """Writes an asciicast v2 file as the session goes: a header line, then one event per line.

    The file is created exclusively and only ever appended to; each event is flushed at once so a
    crashed process leaves a readable recording up to its last event.
    """

    def __init__(self, path: Path, *, width: int, height: int, started: float, title: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._file = open(path, "x", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._start = time.monotonic()
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        header = {
            "version": 2,
            "width": width,
            "height": height,
            "timestamp": int(started),
            "title": title,
            "env": {"TERM": "xterm-256color", "SHELL": "/bin/sh"},
        }
        self._write(header)

    def _write(self, item) -> None:
        self._file.write(json.dumps(item, ensure_ascii=False) + "\n")
        self._file.flush()

    def _event(self, kind: str, data: str) -> None:
        self._write([round(time.monotonic() - self._start, 6), kind, data])

    def output(self, data: bytes) -> str:
        text = self._decoder.decode(data)
        if text:
            self._event("o", text)
        return text

    def input(self, text: str) -> None:
        self._event("i", text)

    def resize(self, cols: int, rows: int) -> None:
        self._event("r", f"{cols}x{rows}")

    def close(self) -> None:
        if not self._file.closed:
            tail = self._decoder.decode(b"", final=True)
            if tail:
                self._event("o", tail)
            self._file.close()


# --- the bridge ------------------------------------------------------------------------------------


class TerminalBridge:
    """One exec session, pumped by its own thread.

    ``send_output(bytes)`` and ``on_end(reason)`` are called from the worker thread; ``send_output``
    should block until the bytes are handed to the browser's socket (that is the back-pressure).
    ``write``, ``resize`` and ``stop`` may be called from any thread.
    """

    def __init__(
        self,
        *,
        session: TerminalSession,
        cluster,
        send_output: Callable[[bytes], None],
        on_end: Callable[[str], None],
        idle_seconds: float,
    ) -> None:
        self.session_id = session.pk
        self.session = session
        self.cluster = cluster
        self.send_output = send_output
        self.on_end = on_end
        self.idle_seconds = idle_seconds
        self.bytes_in = 0
        self.bytes_out = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        self._kube: KubeClient | None = None
        self.marker = f"{session.pk}-{uuid.uuid4().hex}"  # unique even across databases sharing a host
        # What was typed goes through the echo gate; only what it releases is recorded and audited.
        self.gate = EchoGate()
        self.commands = LineEditor()  # over the echoed keys: the command audit
        self.typing = LineEditor()  # over every key sent: the refused-pattern guard, kept in memory only
        self.statuses = StatusScanner()
        self.patterns: list = []
        self.command_count = 0
        self._awaiting_status: int | None = None
        self.thread = threading.Thread(target=self._run, name=f"terminal-session-{session.pk}", daemon=True)

    # -- called from the consumer ----------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def write(self, text: str) -> None:
        self._put(("i", text))

    def resize(self, cols: int, rows: int) -> None:
        self._put(("r", (cols, rows)))

    def stop(self, reason: str) -> None:
        self._put(("stop", reason))

    def join(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def _put(self, item) -> None:
        self._queue.put(item)
        try:
            os.write(self._wake_w, b"x")
        except OSError:  # the thread has ended and closed the pipe
            pass

    # -- the worker thread -------------------------------------------------------------------------

    def _run(self) -> None:
        reason = "closed"
        kube = None
        exec_session = None
        recorder = None
        metrics.TERMINAL_SESSIONS_OPEN.inc()
        try:
            s = self.session
            recorder = Recorder(
                Path(settings.TERMINAL_RECORDINGS_DIR) / s.recording,
                width=s.width,
                height=s.height,
                started=s.started_at.timestamp(),
                title=f"{s.username} {s.namespace}/{s.pod}/{s.container}",
            )
            self.patterns = terminal_commands.patterns_for(s.environment)
            # A dedicated ApiClient for this session; the hang-up execs reuse it.
            kube = self._kube = KubeClient.from_cluster(self.cluster)
            exec_session = kube.exec_stream(
                s.namespace, s.pod, s.container, shell_command(self.marker), tty=True
            )
            exec_session.write_channel(RESIZE, json.dumps({"Width": s.width, "Height": s.height}))
            reason = self._pump(exec_session, recorder)
        except IntegrationError as exc:
            reason = f"error: {exc}"
            self._notify(f"\r\n[cannot open the terminal: {exc}]\r\n", recorder)
        except Exception as exc:
            logger.exception("Terminal session %s failed", self.session_id)
            reason = f"error: {type(exc).__name__}"
        finally:
            if exec_session is not None:
                try:
                    exec_session.close()
                except Exception:
                    logger.warning("Closing exec stream of session %s failed", self.session_id)
            if kube is not None:
                kube.close()
            if recorder is not None:
                try:
                    self._released(recorder, self.gate.finish())
                except Exception:
                    logger.exception("Recording the last keys of terminal session %s failed", self.session_id)
                recorder.close()
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            try:
                close_old_connections()
                session_close(
                    session_id=self.session_id,
                    reason=reason,
                    bytes_in=self.bytes_in,
                    bytes_out=self.bytes_out,
                )
            except Exception:
                logger.exception("Recording the end of terminal session %s failed", self.session_id)
            finally:
                close_old_connections()
            metrics.TERMINAL_SESSIONS_OPEN.dec()
            try:
                self.on_end(reason)
            except Exception:
                logger.debug("on_end of session %s failed", self.session_id, exc_info=True)

    def _notify(self, text: str, recorder: Recorder | None) -> None:
        data = text.encode()
        if recorder is not None:
            recorder.output(data)
        try:
            self.send_output(data)
        except Exception:
            logger.debug("Browser of session %s is gone", self.session_id)

    def _pump(self, exec_session, recorder: Recorder) -> str:
        sock = exec_session.sock
        poller = select.poll()
        poller.register(sock.sock, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        last_input = time.monotonic()
        heartbeat = settings.TERMINAL_HEARTBEAT_SECONDS
        next_beat = time.monotonic() + heartbeat
        while True:
            if time.monotonic() >= next_beat:
                if not session_heartbeat(session_id=self.session_id):
                    self._notify("\r\n[this session was ended by the server]\r\n", recorder)
                    self._hang_up(exec_session, recorder)
                    return "ended elsewhere"
                self.patterns = terminal_commands.patterns_for(self.session.environment)
                next_beat = time.monotonic() + heartbeat
            raw = sock.sock
            # TLS may hold decrypted bytes that poll() cannot see.
            pending = isinstance(raw, ssl.SSLSocket) and raw.pending() > 0
            idle_left = self.idle_seconds - (time.monotonic() - last_input)
            if idle_left <= 0:
                self._notify(f"\r\n[closed after {int(self.idle_seconds)} s without input]\r\n", recorder)
                self._hang_up(exec_session, recorder)
                return "idle timeout"
            wait = min(idle_left, max(0.0, next_beat - time.monotonic()))
            ready = {fd for fd, _ in poller.poll(0 if pending else wait * 1000)}
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
                while True:
                    try:
                        kind, value = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if kind == "stop":
                        self._hang_up(exec_session, recorder)
                        return value
                    if kind == "i":
                        last_input = time.monotonic()
                        self._type(exec_session, recorder, value)
                    elif kind == "r":
                        cols, rows = value
                        exec_session.write_channel(RESIZE, json.dumps({"Width": cols, "Height": rows}))
                        recorder.resize(cols, rows)
            if pending or raw.fileno() in ready:
                chunk, status, closed = self._read_frames(sock)
                if chunk:
                    self.bytes_out += len(chunk)
                    self._shown(recorder, recorder.output(chunk))
                    try:
                        self.send_output(chunk)
                    except Exception:
                        # The browser went away while output was on its way (Daphne's socket raises
                        # Disconnected), before its "stop" reached this thread: end the session as the
                        # stop would have, hang-up included, or the shell would run on in the pod.
                        logger.debug("Browser of session %s is gone", self.session_id, exc_info=True)
                        self._hang_up(exec_session, recorder)
                        return "browser closed"
                if status is not None or closed:
                    return self._exit_reason(status)

    def _type(self, exec_session, recorder: Recorder, text: str) -> None:
        """Send typed keys to the pod, unless Enter would run a refused line: then that line is
        emptied instead (CLEAR_LINE), the rest of the message dropped, and the refusal shown and
        audited."""
        # A browser can send lone surrogates in JSON; they cannot be encoded for the pod or the file.
        keys = split_keys(text.encode("utf-8", "replace").decode())
        sent = 0
        refused = None
        for index, key in enumerate(keys):
            if key in ENTER_KEYS:
                refused = terminal_commands.refusal_match(self.patterns, self.typing.text)
                if refused is not None:
                    break
            self.typing.key(key)
            sent = index + 1
        data = "".join(keys[:sent])
        # Keys of this message have not come back yet: a pasted line counts as not echoed.
        echoed = self.gate.line_echoed() and not any(is_printable(key) for key in keys[:sent])
        if refused is not None:
            data += CLEAR_LINE
        if data:
            exec_session.write_channel(STDIN, data.encode())
            self.bytes_in += len(data.encode())
            self.gate.typed(data)
        if refused is not None:
            self._refuse(recorder, refused, echoed=echoed)

    def _refuse(self, recorder: Recorder, pattern, *, echoed: bool) -> None:
        # The line's text is kept only if every key of it came back: a line typed without echo may
        # be a secret that happens to match.
        text = self.typing.text if echoed else None
        self.typing.feed(CLEAR_LINE)
        self.command_count += 1
        try:
            terminal_commands.command_refuse(
                session=self.session, position=self.command_count, text=text, pattern=pattern
            )
        except Exception:
            logger.exception("Recording a refused command of terminal session %s failed", self.session_id)
        language = (
            UserProfile.objects.filter(user_id=self.session.user_id)
            .values_list("language", flat=True)
            .first()
        )
        with translation.override(language or settings.LANGUAGE_CODE):
            message = _(
                "[refused by OpsPortal: this line matches the refused pattern %(pattern)s "
                "of %(environment)s; it was not sent]"
            ) % {
                "pattern": repr(pattern.description or pattern.pattern),
                "environment": self.session.environment,
            }
        self._notify(f"\r\n{message}\r\n", recorder)

    def _shown(self, recorder: Recorder, text: str) -> None:
        if not text:
            return
        self.gate.shown(text)
        self._released(recorder, self.gate.take())
        for status in self.statuses.feed(text):
            if self._awaiting_status is not None:
                terminal_commands.command_finish(command_id=self._awaiting_status, exit_status=status)
                self._awaiting_status = None

    def _released(self, recorder: Recorder, keys: str) -> None:
        """Record keys the terminal echoed, and the command lines they complete."""
        if not keys:
            return
        recorder.input(keys)
        for line in self.commands.feed(keys):
            if not line.text.strip():
                continue
            self.command_count += 1
            command = terminal_commands.command_record(
                session_id=self.session_id, position=self.command_count, text=line.text, exact=line.exact
            )
            # The next marker is the status of the first line the shell read since the last one; lines
            # after it went to whatever that command ran (a REPL, a prompt).
            if self._awaiting_status is None:
                self._awaiting_status = command.pk

    def _hang_up(self, exec_session, recorder: Recorder) -> None:
        """End what the session runs before its stream closes: an apiserver (kwok, and the container
        runtime too) keeps an exec'd process running after its client goes away. SIGHUP to what the
        session started, then keys for the shell, back at its prompt: Ctrl-C ends a foreground command
        and Ctrl-D the shell, one at a time, because the terminal discards pending input when Ctrl-C
        arrives. SIGKILL to everything of the session if the stream is still open after that."""
        self._signal_session("HUP")
        try:
            for keys in HANG_UP_KEYS:
                exec_session.write_channel(STDIN, keys)
                if self._drain_until_closed(exec_session, recorder, HANG_UP_WAIT / len(HANG_UP_KEYS)):
                    return
        except (websocket.WebSocketException, OSError):
            pass
        self._signal_session("KILL")

    def _signal_session(self, signal: str) -> None:
        s = self.session
        hang_up = None
        try:
            hang_up = self._kube.exec_stream(
                s.namespace,
                s.pod,
                s.container,
                ["/bin/sh", "-c", HANG_UP_SCRIPT, "sh", f"{MARKER_VARIABLE}={self.marker}", signal],
                tty=False,
            )
            hang_up.run_forever(timeout=HANG_UP_EXEC_TIMEOUT)
        except (IntegrationError, websocket.WebSocketException, OSError) as exc:
            logger.warning("SIG%s exec for terminal session %s failed: %s", signal, self.session_id, exc)
        finally:
            if hang_up is not None:
                hang_up.close()

    def _drain_until_closed(self, exec_session, recorder: Recorder, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([exec_session.sock.sock], [], [], left)[0]:
                return False
            chunk, status, closed = self._read_frames(exec_session.sock)
            recorder.output(chunk)
            if status is not None or closed:
                return True
        return False

    def _read_frames(self, sock: websocket.WebSocket) -> tuple[bytes, dict | None, bool]:
        """Read the frames that are there now (at least one), up to OUTPUT_CHUNK bytes of output."""
        out = bytearray()
        status = None
        raw = sock.sock
        while True:
            try:
                opcode, frame = sock.recv_data_frame(True)
            except (websocket.WebSocketConnectionClosedException, OSError):
                return bytes(out), status, True
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return bytes(out), status, True
            data = frame.data if isinstance(frame.data, bytes) else frame.data.encode()
            if len(data) > 1:
                if data[0] in (STDOUT, STDERR):
                    out += data[1:]
                elif data[0] == STATUS:
                    try:
                        status = json.loads(data[1:])
                    except ValueError:
                        status = {"status": "Unknown"}
            more = (isinstance(raw, ssl.SSLSocket) and raw.pending() > 0) or bool(
                select.select([raw], [], [], 0)[0]
            )
            if len(out) >= OUTPUT_CHUNK or not more:
                return bytes(out), status, False

    @staticmethod
    def _exit_reason(status: dict | None) -> str:
        if not status:
            return "stream closed"
        if status.get("status") == "Success":
            return "exited (0)"
        causes = (status.get("details") or {}).get("causes") or []
        code = next((c.get("message") for c in causes if c.get("reason") == "ExitCode"), "")
        if not code and (match := re.search(r"exit status (\d+)", status.get("message", ""))):
            code = match.group(1)  # kwok reports the code only in the message
        return f"exited ({code})" if code else f"exited: {status.get('message', '')}"[:255]
