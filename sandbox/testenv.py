"""Run a command with a real PostgreSQL and Redis, starting them when they are not running.

    python -m sandbox.testenv -- pytest ...

Reuses servers already listening on the test ports. Outside CI the servers it starts keep running
afterwards, so the next run (or a colleague's concurrent one) reuses them; under CI=true they stop
with the run. Set TEST_DATABASE_URL / TEST_REDIS_URL to use servers of your own instead. As root on
Debian it installs missing packages with apt-get; as an ordinary user they must be installed.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from sandbox.ci import in_ci
from sandbox.procs import port_open, redis_server_args, spawn, stop, wait_for

PG_PORT = int(os.environ.get("TEST_PG_PORT", "55432"))
REDIS_PORT = int(os.environ.get("TEST_REDIS_PORT", "56379"))
# Outside root's home so that the postgres user (when we are root) can reach it.
KEEP_SERVERS = not in_ci()
STATE_DIR = Path(os.environ.get("TEST_STATE_DIR", f"/var/tmp/opsportal-testenv-{os.geteuid()}"))


def _apt_install(*packages: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit(
            f"Missing {', '.join(packages)}: install them (Debian: apt-get install {' '.join(packages)})."
        )
    print(f"testenv: installing {' '.join(packages)} with apt-get…", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env)


def _pg_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates and shutil.which("initdb"):
        candidates = [shutil.which("initdb")]
    if not candidates:
        _apt_install("postgresql")
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    return Path(candidates[0]).parent


def _accepting_connections(bindir: Path) -> bool:
    # The port opens before the server accepts sessions: after an unclean stop (a killed session
    # leaves a kept server that way) crash recovery answers "not yet accepting connections" for a while.
    ready = subprocess.run(
        [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "opsportal"],
        check=False,
    )
    return ready.returncode == 0


def _state_dir() -> Path:
    if KEEP_SERVERS:
        return STATE_DIR
    # CI starts from nothing: data left by an earlier, killed run must not decide whether this one passes.
    STATE_DIR.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{STATE_DIR.name}-ci-", dir=STATE_DIR.parent))


def start_postgres(procs: list, cleanup: list[Path]) -> str:
    url = f"postgres://opsportal@127.0.0.1:{PG_PORT}/opsportal"
    bindir = _pg_bindir()
    if port_open(PG_PORT):
        wait_for(lambda: _accepting_connections(bindir), timeout=120, what="PostgreSQL (already running)")
        return url
    as_user = "postgres" if os.geteuid() == 0 else None
    state = _state_dir()
    if state != STATE_DIR:
        cleanup.append(state)
    data = state / "pg"
    log = state / "postgres.log"
    state.mkdir(parents=True, exist_ok=True)
    if as_user:
        shutil.chown(state, user=as_user)
    if not (data / "PG_VERSION").exists():
        print("testenv: initialising a PostgreSQL cluster…", flush=True)
        cmd = [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "opsportal",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ]
        subprocess.run(
            ["runuser", "-u", as_user, "--", *cmd] if as_user else cmd, check=True, stdout=subprocess.DEVNULL
        )
    proc = spawn(
        [
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(PG_PORT),
            "-k",
            str(state),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=200",
        ],
        log=log,
        user=as_user,
        detach=KEEP_SERVERS,
    )
    procs.append(proc)
    wait_for(lambda: _accepting_connections(bindir), timeout=120, what="PostgreSQL", proc=proc, log=log)
    # The role's own database, so the URL works for manage.py as well as for the test database.
    created = subprocess.run(
        [
            str(bindir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(PG_PORT),
            "-U",
            "opsportal",
            "-d",
            "postgres",
            "-tAc",
            "SELECT 1 FROM pg_database WHERE datname='opsportal'",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        raise RuntimeError(f"PostgreSQL on port {PG_PORT} refused a session: {created.stderr.strip()}")
    if created.stdout.strip() != "1":
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "opsportal", "opsportal"],
            check=True,
        )
    return url


def start_redis(procs: list) -> str:
    url = f"redis://127.0.0.1:{REDIS_PORT}/0"
    if port_open(REDIS_PORT):
        return url
    if not shutil.which("redis-server"):
        _apt_install("redis-server")
    proc = spawn(
        [*redis_server_args(REDIS_PORT), "--daemonize", "no"],
        detach=KEEP_SERVERS,
    )
    procs.append(proc)
    wait_for(lambda: port_open(REDIS_PORT), timeout=30, what="Redis", proc=proc)
    return url


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__)
        return 2
    command = argv[argv.index("--") + 1 :]
    procs: list = []
    cleanup: list[Path] = []
    try:
        env = dict(os.environ)
        env["DATABASE_URL"] = os.environ.get("TEST_DATABASE_URL") or start_postgres(procs, cleanup)
        env["REDIS_URL"] = os.environ.get("TEST_REDIS_URL") or start_redis(procs)
        return subprocess.call(command, env=env)
    finally:
        if not KEEP_SERVERS:
            for proc in reversed(procs):
                stop(proc)
            for path in cleanup:
                shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
