"""The web terminal over a real WebSocket, real Daphne and the real control plane (kwok exec runs a
real local shell in a real pty): permissions, pod scoping, limits, idle timeout, recording, cleanup."""

import json
import re
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone
from kubernetes import client as k8s
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from clusters.models import ProjectEnvironment, TerminalCommand, TerminalSession
from clusters.services import terminal, terminal_commands
from observability.models import AuditEvent
from projects import services as project_services
from projects.models import ProdTerminalGrant
from sandbox.procs import free_port, port_open, spawn, stop, wait_for
from tests.browser import sign_in
from tests.fixtures.services import BASE_DIR, _server_env
from tests.helpers.metrics import sample, scrape
from tests.polling import until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.kube, pytest.mark.services]

POD = "orders-7d9f-abcde"
SIBLING = "orders-5c4b-other"


def _daphne(tmp_path_factory, name: str, **env):
    recordings = tmp_path_factory.mktemp(f"{name}-recordings")
    log = tmp_path_factory.mktemp(name) / "daphne.log"
    port = free_port()
    server_env = {**_server_env(), "TERMINAL_RECORDINGS_DIR": str(recordings), **env}
    proc = spawn(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "opsportal.asgi:application"],
        log=log,
        env=server_env,
        cwd=BASE_DIR,
    )
    wait_for(lambda: port_open(port), timeout=60, what="Daphne", proc=proc, log=log)
    proc.log_path = log
    return proc, f"http://127.0.0.1:{port}", recordings


class Server:
    def __init__(self, url: str, recordings: Path, pid: int, log: Path | None = None):
        self.url, self.recordings, self.pid, self.log = url, recordings, pid, log


@pytest.fixture(scope="module")
def terminal_server(django_db_setup, tmp_path_factory):
    """Daphne with its recordings in a temporary directory, at most 3 sessions per user, and the prod
    grant of an open session re-checked every second."""
    proc, url, recordings = _daphne(
        tmp_path_factory, "terminal", TERMINAL_MAX_SESSIONS_PER_USER="3", TERMINAL_GRANT_RECHECK_SECONDS="1"
    )
    yield Server(url, recordings, proc.pid, proc.log_path)
    stop(proc)


@pytest.fixture(scope="module")
def idle_server(django_db_setup, tmp_path_factory):
    """Daphne that closes a terminal after 2 s without input."""
    proc, url, recordings = _daphne(tmp_path_factory, "terminal-idle", TERMINAL_IDLE_SECONDS="2")
    yield Server(url, recordings, proc.pid)
    stop(proc)


def _running_pod(core: k8s.CoreV1Api, namespace: str, name: str, labels: dict) -> None:
    core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "app", "image": "registry.local/orders:1"}]},
        },
    )

    def running():
        pod = core.read_namespaced_pod(name, namespace)
        return pod.status.phase == "Running"

    until(f"pod {namespace}/{name} running", running, 60)


@pytest.fixture
def environments(people, local_clusters, kube_cluster):
    """orders in test and prod: a namespace each with one project pod and one foreign pod."""
    core = k8s.CoreV1Api(kube_cluster.api_client)
    envs = {}
    for environment, cluster in local_clusters.items():
        namespace = cluster.namespace_for("orders")
        core.create_namespace({"metadata": {"name": namespace}})
        until(
            "the default ServiceAccount",
            lambda ns=namespace: any(
                sa.metadata.name == "default" for sa in core.list_namespaced_service_account(ns).items
            ),
        )
        own = {"app.kubernetes.io/name": "orders", "app.kubernetes.io/instance": f"orders-{environment}"}
        _running_pod(core, namespace, POD, own)
        _running_pod(core, namespace, "stranger", {"app.kubernetes.io/name": "payments"})
        # The same project's other environment, sharing this namespace: not this environment's pod.
        other = "prod" if environment == "test" else "test"
        _running_pod(
            core,
            namespace,
            SIBLING,
            {"app.kubernetes.io/name": "orders", "app.kubernetes.io/instance": f"orders-{other}"},
        )
        envs[environment] = ProjectEnvironment.objects.create(
            project=people.project, environment=environment, cluster=cluster, namespace=namespace
        )
    return envs


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


class Term:
    """The terminal WebSocket as the page uses it."""

    def __init__(self, server: Server, user: User, environment="test", pod=POD, container="", size=(80, 24)):
        host = server.url.split("//", 1)[1]
        query = f"pod={pod}&container={container}&cols={size[0]}&rows={size[1]}"
        self.ws = connect(
            f"ws://{host}/ws/terminal/orders/{environment}/?{query}",
            additional_headers={"Origin": server.url, "Cookie": f"sessionid={session_cookie(user)}"},
            open_timeout=15,
        )
        self.output = ""
        self.notices: list[dict] = []

    def next_notice(self, timeout: float = 20) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            message = self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
            if isinstance(message, bytes):
                self.output += message.decode(errors="replace")
                continue
            notice = json.loads(message)
            self.notices.append(notice)
            return notice

    def type(self, text: str) -> None:
        self.ws.send(json.dumps({"type": "input", "data": text}))

    def resize(self, cols: int, rows: int) -> None:
        self.ws.send(json.dumps({"type": "resize", "cols": cols, "rows": rows}))

    def wait_output(self, pattern: str, timeout: float = 30) -> re.Match:
        deadline = time.monotonic() + timeout
        while not (match := re.search(pattern, self.output)):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} in terminal output: {self.output[-2000:]!r}")
            try:
                message = self.ws.recv(timeout=remaining)
            except TimeoutError:
                continue
            if isinstance(message, bytes):
                self.output += message.decode(errors="replace")
            else:
                self.notices.append(json.loads(message))
        return match

    def wait_prompts(self, count: int, timeout: float = 30) -> None:
        """Wait for bash's count-th prompt (its invisible exit-status marker): keys typed before the
        shell reads them are typed ahead, and their echo is not where the echo gate looks for it."""
        prompt = r"\x1b\]6973;\d+\x07\x1b\[\?2004h[^\r\n]*?[#$] "  # the marker, then the prompt itself
        self.wait_output(rf"({prompt}(.|\n)*){{{count}}}", timeout)

    def close(self) -> None:
        self.ws.close()


def process_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def read_cast(path: Path) -> tuple[dict, list]:
    lines = path.read_text().splitlines()
    return json.loads(lines[0]), [json.loads(line) for line in lines[1:]]


def _open_terminals(server) -> tuple[float, float]:
    """(sessions, terminal sockets) open in every web server of the run (Daphne adds them up)."""
    text = scrape(server.url)
    return (
        sample(text, "opsportal_terminal_sessions_open"),
        sample(text, "opsportal_websockets_open", consumer="terminal"),
    )


def test_terminal_runs_a_shell_resizes_records_and_closes(people, environments, terminal_server):
    sessions, sockets = _open_terminals(terminal_server)
    term = Term(terminal_server, people.developer)
    ready = term.next_notice()
    assert ready["type"] == "ready" and ready["container"] == "app"
    until("the session in /metrics", lambda: _open_terminals(terminal_server) == (sessions + 1, sockets + 1))
    session = TerminalSession.objects.get(pk=ready["session"])
    assert (session.username, session.pod, session.container) == ("dora-dev", POD, "app")

    # The echoed command line shows hel''lo; only the command's output shows hello.
    term.wait_prompts(1)
    term.type("echo hel''lo; echo pid-$$\r")
    shell_pid = int(term.wait_output(r"pid-(\d+)").group(1))
    assert re.search(r"[\r\n]hello\r\n", term.output)
    term.resize(91, 37)
    term.type("stty size\r")
    term.wait_output(r"37 91")

    term.close()
    session = until(
        "the session row to end",
        lambda: TerminalSession.objects.filter(pk=session.pk, ended_at__isnull=False).first(),
    )
    assert session.end_reason == "browser closed"
    until("the exec shell to be gone", lambda: process_gone(shell_pid))
    until("the session out of /metrics", lambda: _open_terminals(terminal_server) == (sessions, sockets))
    assert session.bytes_in == len("echo hel''lo; echo pid-$$\r") + len("stty size\r")
    assert session.bytes_out > 0

    header, events = read_cast(terminal_server.recordings / session.recording)
    assert header["version"] == 2 and (header["width"], header["height"]) == (80, 24)
    assert "timestamp" in header and "env" in header
    output = "".join(data for _, kind, data in events if kind == "o")
    assert re.search(r"[\r\n]hello\r\n", output) and "37 91" in output
    typed = "".join(data for _, kind, data in events if kind == "i")
    assert typed == "echo hel''lo; echo pid-$$\rstty size\r"
    assert ["r", "91x37"] in [[kind, data] for _, kind, data in events]
    times = [t for t, _, _ in events]
    assert times == sorted(times)

    verbs = list(
        AuditEvent.objects.filter(target_type="clusters.terminalsession", target_id=str(session.pk))
        .order_by("id")
        .values_list("verb", "actor_name")
    )
    assert verbs == [("terminal.open", "dora-dev"), ("terminal.close", "dora-dev")]
    for event in AuditEvent.objects.filter(target_type="clusters.terminalsession"):
        assert "hel''lo" not in json.dumps(event.changes) and "stty" not in json.dumps(event.changes)


def children_named(parent: int, name: str) -> int | None:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            comm, rest = stat.read_text().split("(", 1)[1].rsplit(")", 1)
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if comm == name and int(rest.split()[1]) == parent:
            return int(stat.parent.name)
    return None


def test_closing_the_terminal_hangs_up_a_full_screen_program(people, environments, terminal_server):
    """vim ignores the keys a hang-up could type; closing the tab must still end it and the shell."""
    term = Term(terminal_server, people.developer)
    session_id = term.next_notice()["session"]
    term.type("echo pid-$$\r")
    shell_pid = int(term.wait_output(r"pid-(\d+)").group(1))
    term.type("vim -u NONE -n\r")
    vim_pid = until("vim to start", lambda: children_named(shell_pid, "vim"))
    term.close()
    until("vim to end", lambda: process_gone(vim_pid), 15)
    until("the shell to end", lambda: process_gone(shell_pid), 15)
    session = until(
        "the session row to end",
        lambda: TerminalSession.objects.filter(pk=session_id, ended_at__isnull=False).first(),
    )
    assert session.end_reason == "browser closed"


def test_shell_exit_ends_the_session(people, environments, terminal_server):
    term = Term(terminal_server, people.developer)
    session_id = term.next_notice()["session"]
    term.type("exit 3\r")
    notice = term.next_notice()
    assert notice == {"type": "exit", "reason": "exited (3)"}
    session = until(
        "the session row to end",
        lambda: TerminalSession.objects.filter(pk=session_id, ended_at__isnull=False).first(),
    )
    assert session.end_reason == "exited (3)"


def test_non_member_is_refused_before_the_handshake(people, environments, terminal_server):
    with pytest.raises(InvalidStatus) as refused:
        Term(terminal_server, people.outsider)
    assert refused.value.response.status_code == 403
    client = Client()
    client.force_login(people.outsider)
    assert client.get(f"/projects/orders/env/test/terminal/?pod={POD}").status_code == 404
    assert not TerminalSession.objects.exists()


def _refused(term: Term) -> tuple[str, int]:
    notice = term.next_notice()
    assert notice["type"] == "error"
    with pytest.raises(ConnectionClosed):
        term.next_notice()
    return notice["message"], term.ws.close_code


def test_viewer_and_tester_cannot_open_a_terminal(people, environments, terminal_server):
    for user in (people.viewer, people.tester):
        message, code = _refused(Term(terminal_server, user))
        assert code == 4403 and "terminal test" in message
        client = Client()
        client.force_login(user)
        assert client.get(f"/projects/orders/env/test/terminal/?pod={POD}").status_code == 403
    assert not TerminalSession.objects.exists()


def test_prod_needs_ops_or_the_prod_grant(people, environments, terminal_server):
    message, code = _refused(Term(terminal_server, people.developer, environment="prod"))
    assert code == 4403 and "terminal prod" in message
    client = Client()
    client.force_login(people.developer)
    assert client.get("/projects/orders/env/prod/terminal/").status_code == 403

    grant = project_services.terminal_grant_create(
        actor=people.ops, project=people.project, user=people.developer
    )
    term = Term(terminal_server, people.developer, environment="prod")
    assert term.next_notice()["type"] == "ready"
    term.close()
    assert client.get("/projects/orders/env/prod/terminal/").status_code == 200

    ops = Term(terminal_server, people.ops, environment="prod")
    assert ops.next_notice()["type"] == "ready"
    ops.close()

    # Lapsed by the clock, not yet recorded by the beat task: the server refuses all the same.
    ProdTerminalGrant.objects.filter(pk=grant.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    message, code = _refused(Term(terminal_server, people.developer, environment="prod"))
    assert code == 4403 and "terminal prod" in message
    assert client.get("/projects/orders/env/prod/terminal/").status_code == 403


def test_an_open_prod_terminal_closes_when_its_grant_is_revoked(people, environments, terminal_server):
    grant = project_services.terminal_grant_create(
        actor=people.ops, project=people.project, user=people.developer
    )
    term = Term(terminal_server, people.developer, environment="prod")
    session_id = term.next_notice()["session"]
    term.type("echo still-here\r")
    term.wait_output(r"still-here\r\n")
    project_services.terminal_grant_revoke(actor=people.ops, grant=grant)
    notice = term.next_notice(timeout=15)
    assert notice == {"type": "exit", "reason": "access lapsed (grant expired or revoked)"}
    session = until(
        "the session row to end",
        lambda: TerminalSession.objects.filter(pk=session_id, ended_at__isnull=False).first(),
    )
    assert session.end_reason == "access lapsed (grant expired or revoked)"
    # A test terminal of the same member is not affected by the prod grant.
    test_term = Term(terminal_server, people.developer)
    assert test_term.next_notice()["type"] == "ready"
    test_term.close()


def test_only_the_projects_own_pods_can_be_opened(people, environments, terminal_server):
    message, code = _refused(Term(terminal_server, people.ops, pod="stranger"))
    assert code == 4404 and "No pod stranger of project orders" in message
    message, code = _refused(Term(terminal_server, people.ops, pod="no-such-pod"))
    assert code == 4404
    message, code = _refused(Term(terminal_server, people.ops, pod=SIBLING))
    assert code == 4404 and f"No pod {SIBLING} of project orders in test" in message
    client = Client()
    client.force_login(people.ops)
    listed = client.get("/projects/orders/env/test/terminal/").content.decode()
    assert f'value="{POD}"' in listed
    assert f'value="{SIBLING}"' not in listed and 'value="stranger"' not in listed
    message, code = _refused(Term(terminal_server, people.ops, container="sidecar"))
    assert code == 4404 and "no container sidecar" in message
    assert not TerminalSession.objects.exists()


def test_a_fourth_session_is_refused(people, environments, terminal_server):
    terms = [Term(terminal_server, people.developer) for _ in range(3)]
    for term in terms:
        assert term.next_notice()["type"] == "ready"
    message, code = _refused(Term(terminal_server, people.developer))
    assert code == 4429 and "at most 3" in message
    terms[0].close()
    until("the first session to end", lambda: TerminalSession.objects.filter(ended_at__isnull=False).exists())
    again = Term(terminal_server, people.developer)
    assert again.next_notice()["type"] == "ready"
    for term in [*terms[1:], again]:
        term.close()
    until("every session to end", lambda: not TerminalSession.objects.filter(ended_at__isnull=True).exists())


def test_idle_terminal_is_closed(people, environments, idle_server):
    term = Term(idle_server, people.developer)
    session_id = term.next_notice()["session"]
    term.type("echo still-here pid-$$\r")
    shell_pid = int(term.wait_output(r"still-here pid-(\d+)\r\n").group(1))
    notice = term.next_notice(timeout=30)
    assert notice == {"type": "exit", "reason": "idle timeout"}
    assert "without input" in term.output
    until("the idle shell to end", lambda: process_gone(shell_pid), 15)
    session = until(
        "the session row to end",
        lambda: TerminalSession.objects.filter(pk=session_id, ended_at__isnull=False).first(),
    )
    assert session.end_reason == "idle timeout"
    assert session.duration.total_seconds() >= 2


def test_relay_heartbeats_and_stops_when_ended_elsewhere(people, environments, tmp_path_factory):
    proc, url, recordings = _daphne(tmp_path_factory, "terminal-beat", TERMINAL_HEARTBEAT_SECONDS="1")
    try:
        term = Term(Server(url, recordings, proc.pid), people.developer)
        session_id = term.next_notice()["session"]
        started = TerminalSession.objects.get(pk=session_id).started_at
        beat = started + timedelta(seconds=0.9)
        until("a heartbeat", lambda: TerminalSession.objects.get(pk=session_id).last_seen_at > beat, 10)
        terminal.session_close(session_id=session_id, reason="ended by ops", bytes_in=0, bytes_out=0)
        assert term.next_notice(timeout=10) == {"type": "exit", "reason": "ended elsewhere"}
        assert "ended by the server" in term.output
        assert TerminalSession.objects.get(pk=session_id).end_reason == "ended by ops"
    finally:
        stop(proc)


def test_sessions_of_a_killed_server_are_reaped_and_free_the_slot(people, environments, tmp_path_factory):
    env = {"TERMINAL_HEARTBEAT_SECONDS": "1", "TERMINAL_MAX_SESSIONS_PER_USER": "1"}
    first, url, recordings = _daphne(tmp_path_factory, "terminal-doomed", **env)
    term = Term(Server(url, recordings, first.pid), people.developer)
    lost_id = term.next_notice()["session"]
    first.kill()  # no chance to close anything: the row stays open
    first.wait(10)
    assert TerminalSession.objects.get(pk=lost_id).ended_at is None

    second, url, recordings = _daphne(tmp_path_factory, "terminal-after", **env)
    try:
        server = Server(url, recordings, second.pid)
        last_beat = TerminalSession.objects.get(pk=lost_id).last_seen_at
        time.sleep(max(0.0, (last_beat + timedelta(seconds=3.3) - timezone.now()).total_seconds()))
        fresh = Term(server, people.developer)
        assert fresh.next_notice()["type"] == "ready"
        lost = TerminalSession.objects.get(pk=lost_id)
        assert lost.ended_at is not None and lost.end_reason == terminal.LOST_REASON
        close = AuditEvent.objects.get(
            verb="terminal.close", target_type="clusters.terminalsession", target_id=str(lost_id)
        )
        assert close.actor is None and close.actor_name == "system"
        fresh.close()
        until("the fresh session to end", lambda: not TerminalSession.objects.filter(ended_at__isnull=True))
    finally:
        stop(second)


def test_reaper_leaves_live_and_other_users_sessions_alone(people, environments, settings):
    settings.TERMINAL_HEARTBEAT_SECONDS = 60
    now = timezone.now()

    def row(user, last_seen):
        return TerminalSession.objects.create(
            user=user,
            username=user.get_username(),
            project=people.project,
            environment="test",
            cluster_name="c",
            namespace="ns",
            pod=POD,
            container="app",
            last_seen_at=last_seen,
        )

    stale_dev = row(people.developer, now - timedelta(minutes=4))
    live_dev = row(people.developer, now - timedelta(minutes=2))
    stale_other = row(people.owner, now - timedelta(minutes=10))
    assert terminal.sessions_reap_stale(user=people.developer, now=now) == 1
    assert TerminalSession.objects.get(pk=stale_dev.pk).end_reason == terminal.LOST_REASON
    assert TerminalSession.objects.get(pk=live_dev.pk).ended_at is None
    assert TerminalSession.objects.get(pk=stale_other.pk).ended_at is None
    # The beat task's call takes everyone, and a second run changes nothing.
    assert terminal.sessions_reap_stale(now=now) == 1
    assert terminal.sessions_reap_stale(now=now) == 0
    assert not terminal.session_heartbeat(session_id=stale_other.pk)
    assert terminal.session_heartbeat(session_id=live_dev.pk)


# --- what is recorded and audited (issue #11) ------------------------------------------------------


def _ended(session_id: int) -> TerminalSession:
    return until(
        "the session row to end",
        lambda: TerminalSession.objects.filter(pk=session_id, ended_at__isnull=False).first(),
    )


def _database_holds(text: str) -> list[str]:
    """Every text, varchar and jsonb column of every table that contains ``text``."""
    hits = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND data_type IN ('text', 'character varying', 'jsonb')"
        )
        for table, column in cursor.fetchall():
            # Names from the catalogue, quoted; the value is a parameter.
            query = f"SELECT count(*) FROM {connection.ops.quote_name(table)} WHERE {connection.ops.quote_name(column)}::text LIKE %s"  # noqa: S608, E501
            cursor.execute(query, [f"%{text}%"])
            if cursor.fetchone()[0]:
                hits.append(f"{table}.{column}")
    return hits


def test_input_typed_without_echo_is_recorded_nowhere(people, environments, terminal_server):
    secret = f"pw-{uuid.uuid4().hex[:12]}"
    term = Term(terminal_server, people.developer)
    session_id = term.next_notice()["session"]
    term.wait_prompts(1)
    term.type("stty -echo; echo reading; read x; echo read-$((${#x} * 2))\r")
    term.wait_output(r"[\r\n]reading\r\n")  # the echo is off now
    term.type(f"{secret}\r")  # a password prompt: the tty does not echo it
    term.wait_output(rf"read-{2 * len(secret)}\r\n")  # the shell did read it
    term.wait_prompts(2)
    term.type("stty echo\r")  # typed blind: not echoed, so not recorded either
    term.wait_prompts(3)
    # A getpass prompt (sudo, passwd and mysql -p read the same way), which prints a line feed after it.
    getpass = f'{sys.executable} -c \'import getpass; print("got", 3 * len(getpass.getpass("Password: ")))\''
    term.type(f"{getpass}\r")
    term.wait_output(r"[\r\n]Password: ")  # the prompt, not the command's echo
    term.type(f"{secret}-2\r")
    term.wait_output(rf"got {3 * len(secret + '-2')}\r\n")
    term.wait_prompts(4)
    term.type("echo echo-is-back\r")
    term.wait_output(r"echo-is-back\r\n")
    assert secret not in term.output
    term.close()
    session = _ended(session_id)

    cast = (terminal_server.recordings / session.recording).read_text()
    assert secret not in cast
    _, events = read_cast(terminal_server.recordings / session.recording)
    typed = "".join(data for _, kind, data in events if kind == "i")
    first = "stty -echo; echo reading; read x; echo read-$((${#x} * 2))"
    assert typed == f"{first}\r{getpass}\recho echo-is-back\r"
    commands = list(TerminalCommand.objects.filter(session=session).values_list("text", flat=True))
    assert commands == [first, getpass, "echo echo-is-back"]
    assert _database_holds(secret) == []
    assert secret not in terminal_server.log.read_text()
    assert session.bytes_in >= len(secret)  # it was sent to the pod, only never kept


def test_commands_are_rebuilt_with_their_exit_status(people, environments, terminal_server):
    term = Term(terminal_server, people.developer)
    session_id = term.next_notice()["session"]
    term.wait_prompts(1)
    for prompts, keys in enumerate(
        [
            "true\r",
            "false\r",
            "echo one two\x17three\r",  # Ctrl-W deletes a word
            "echo typo\x7f\x7f\x7f\x7fgood\r",
            "ls /no-such-dir-here\r",
            "garbage\x15\r",  # Ctrl-U: dropped, never run (Ctrl-C cannot reach bash under kwok)
            "sh -c 'exit 7'\r",
            "echo lone-\ud800-surrogate\r",  # valid JSON, not encodable: replaced, not a crash
            "echo last\r",
        ],
        start=2,
    ):
        term.type(keys)
        term.wait_prompts(prompts)
    rows = until(
        "the last command's exit status",
        lambda: (
            list(TerminalCommand.objects.filter(session_id=session_id).order_by("position"))
            if TerminalCommand.objects.filter(session_id=session_id, text="echo last", exit_status=0).exists()
            else None
        ),
    )
    assert [(row.text, row.exit_status, row.exact) for row in rows] == [
        ("true", 0, True),
        ("false", 1, True),
        ("echo one three", 0, True),
        ("echo good", 0, True),
        ("ls /no-such-dir-here", 2, True),
        ("sh -c 'exit 7'", 7, True),
        ("echo lone-?-surrogate", 0, True),
        ("echo last", 0, True),
    ]
    assert [row.position for row in rows] == list(range(1, 9))
    assert all(row.finished_at >= row.entered_at for row in rows)
    term.close()
    _ended(session_id)

    client = Client()
    client.force_login(people.developer)
    page = client.get(f"/terminal-sessions/{session_id}/").content.decode()
    assert "echo one three" in page and "sh -c &#x27;exit 7&#x27;" in page


def test_a_refused_line_is_not_run_and_is_shown_and_audited(
    people, environments, terminal_server, tmp_path, default_patterns
):
    proof = tmp_path / "ran"
    terminal_commands.pattern_create(
        actor=people.ops, environment="prod", kind="glob", pattern="uptime", description="prod only"
    )
    term = Term(terminal_server, people.developer)
    session_id = term.next_notice()["session"]
    term.wait_prompts(1)
    term.type(f"touch {proof}; reboot")
    term.wait_output("; reboot")  # typed and echoed: the line is known to be visible
    term.type("\r")
    term.wait_output(r"refused by OpsPortal")
    # A paste with a refused line: nothing from it reaches the pod, not even the lines after it.
    term.type(f"shutdown -h now\rtouch {proof}\r")
    term.wait_output(r"refused by OpsPortal(.|\n)*refused by OpsPortal")
    term.type("uptime > /dev/null && echo uptime-ran\r")  # refused in prod only
    # The command's output and then its exit status marker: the echo of the typed line also ends in
    # "uptime-ran\r\n", and the command is recorded only once it has finished.
    term.wait_output(r"[\r\n]uptime-ran\r\n\x1b\]6973;0\x07")
    assert not proof.exists()
    assert "'reboot'" in term.output and "'shutdown'" in term.output
    term.close()
    session = _ended(session_id)

    refused = list(
        TerminalCommand.objects.filter(session=session, refused=True)
        .order_by("position")
        .values_list("text", "refused_pattern")
    )
    assert [text for text, _ in refused] == [f"touch {proof}; reboot", terminal_commands.WITHHELD_TEXT]
    assert all(pattern for _, pattern in refused)
    events = AuditEvent.objects.filter(verb="terminal.refused", target_id=str(session.pk)).order_by("id")
    rows = list(TerminalCommand.objects.filter(session=session, refused=True).order_by("position"))
    assert [(e.actor_name, e.changes["command_id"], e.changes["command_echoed"]) for e in events] == [
        ("dora-dev", rows[0].pk, True),
        ("dora-dev", rows[1].pk, False),
    ]
    assert all(str(proof) not in json.dumps(e.changes) for e in events)  # the line stays on the row
    assert events[0].project == people.project and events[0].changes["environment"] == "test"
    header, cast = read_cast(terminal_server.recordings / session.recording)
    assert "refused by OpsPortal" in "".join(data for _, kind, data in cast if kind == "o")
    assert "uptime > /dev/null" in [c.text.split(" &&")[0] for c in session.commands.all()]


# --- in a real browser ----------------------------------------------------------------------------


def _wait_text(page, pattern: str, timeout: float = 30_000) -> str:
    page.wait_for_function(
        'pattern => new RegExp(pattern, "m").test(window.opsTerminal.text())', arg=pattern, timeout=timeout
    )
    return page.evaluate("window.opsTerminal.text()")


@pytest.mark.browser
def test_browser_terminal_echo_resize_close_and_replay(people, environments, terminal_server, chromium):
    base = terminal_server.url
    page = sign_in(chromium, base, people.developer.username)
    page.set_viewport_size({"width": 1200, "height": 800})
    page.goto(f"{base}/projects/orders/env/test/terminal/?pod={POD}")
    page.wait_for_selector("#terminal-status[data-state=open]")
    session = TerminalSession.objects.get(pk=int(page.get_attribute("#terminal", "data-session")))

    page.click("#terminal")
    page.keyboard.type("echo hel''lo; echo pid-$$")
    page.keyboard.press("Enter")
    text = _wait_text(page, r"pid-\d+")
    assert re.search(r"(?m)^hello\s*$", text)
    shell_pid = int(re.search(r"pid-(\d+)", text).group(1))

    page.set_viewport_size({"width": 800, "height": 500})
    page.wait_for_function("() => window.opsTerminal.term.cols < 90")
    cols, rows = page.evaluate("[window.opsTerminal.term.cols, window.opsTerminal.term.rows]")
    page.keyboard.type("stty size")
    page.keyboard.press("Enter")
    _wait_text(page, rf"^{rows} {cols}\s*$")

    page.context.close()  # closing the tab closes the exec stream
    session = until(
        "the session to end",
        lambda: TerminalSession.objects.filter(pk=session.pk, ended_at__isnull=False).first(),
    )
    until("the exec shell to be gone", lambda: process_gone(shell_pid))

    header, events = read_cast(terminal_server.recordings / session.recording)
    output = "".join(data for _, kind, data in events if kind == "o")
    assert re.search(r"[\r\n]hello\r\n", output)
    assert f"{cols}x{rows}" in [data for _, kind, data in events if kind == "r"]

    ops = sign_in(chromium, base, people.ops.username)
    ops.goto(f"{base}/terminal-sessions/?project=orders&user=dora-dev")
    row = ops.locator(f"#session-table tr[data-session='{session.pk}']").inner_text()
    assert "dora-dev" in row and POD in row
    ops.click(f"#session-table tr[data-session='{session.pk}'] a")
    ops.select_option("#replay-speed", "0")
    ops.click("#replay-play")
    ops.wait_for_selector("#replay-status[data-state=done]")
    replayed = ops.evaluate("window.opsReplay.text()")
    assert re.search(r"(?m)^hello\s*$", replayed)
    assert json.dumps(header)  # the header is plain JSON


@pytest.mark.browser
def test_browser_shows_a_refusal(people, environments, terminal_server, chromium, default_patterns):
    base = terminal_server.url
    page = sign_in(chromium, base, people.developer.username)
    page.goto(f"{base}/projects/orders/env/test/terminal/?pod={POD}")
    page.wait_for_selector("#terminal-status[data-state=open]")
    session_id = int(page.get_attribute("#terminal", "data-session"))
    _wait_text(page, r"[#$] $")
    page.click("#terminal")
    page.keyboard.type("echo before-; reboot")
    _wait_text(page, r"before-; reboot")
    page.keyboard.press("Enter")
    text = _wait_text(page, r"refused by OpsPortal")
    assert "'reboot'" in text and not re.search(r"(?m)^before-\s*$", text)  # echo never ran
    page.keyboard.type("echo after-refusal")
    page.keyboard.press("Enter")
    _wait_text(page, r"^after-refusal\s*$")  # the terminal goes on
    page.context.close()
    _ended(session_id)
    assert AuditEvent.objects.filter(verb="terminal.refused", target_id=str(session_id)).count() == 1
