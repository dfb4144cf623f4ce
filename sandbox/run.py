"""`make run`: migrate, seed the demo, and serve the portal with a background worker.

Embedded by default (SQLite, filesystem broker, no Redis). With DATABASE_URL / REDIS_URL set it
uses PostgreSQL and Redis instead. Everything started here stops with it (Ctrl-C).
"""

import os
import signal
import sys
import time
from pathlib import Path

from sandbox.procs import port_open, spawn, stop_all, wait_for

HOST = os.environ.get("OPSPORTAL_HOST", "127.0.0.1")
PORT = int(os.environ.get("OPSPORTAL_PORT", "8000"))
BASE_DIR = Path(__file__).resolve().parent.parent


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings")
    os.environ.setdefault("DJANGO_DEBUG", "true")
    os.environ.setdefault("DJANGO_SECURE_COOKIES", "false")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from sandbox.seed import seed_demo

    mode = "embedded (SQLite, no Redis)" if settings.EMBEDDED else "PostgreSQL + Redis"
    print(f"OpsPortal: database and broker mode: {mode}", flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    created = seed_demo()
    if created:
        print("\nDemo users (passwords are shown only this once):")
        for username, password in created.items():
            print(f"  {username:6} {password}")
        print()
    if port_open(PORT, HOST):
        print(f"Port {PORT} is taken: stop what runs there or set OPSPORTAL_PORT.", file=sys.stderr)
        return 1
    env = dict(os.environ)
    pipeline = None
    if os.environ.get("OPSPORTAL_SANDBOX", "1") != "0":
        from sandbox import services

        pipeline = services.start_pipeline(settings.VAR_DIR / "sandbox")
        env.update(pipeline.settings())
        print(
            f"Sandbox: GitLab {pipeline.gitlab.url}, Jenkins {pipeline.jenkins.url}, "
            f"registry {pipeline.registry.url}",
            flush=True,
        )
        if not services.real_clusters_configured():
            kube_dir = settings.VAR_DIR / "kube"
            env["SANDBOX_KUBE_DIR"] = str(kube_dir)
            env["OPSPORTAL_DEV_CLUSTER_STATUS"] = "sandbox.kube.cluster.dev_cluster_status"
            services.start_cluster(kube_dir)
            print(
                "Sandbox: starting the local Kubernetes control plane in the background "
                "(the first build takes several minutes; progress on the Clusters page).",
                flush=True,
            )

    log_dir = settings.VAR_DIR / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    procs = [
        spawn(
            [python, "-m", "daphne", "-b", HOST, "-p", str(PORT), "opsportal.asgi:application"],
            log=log_dir / "web.log",
            env=env,
            cwd=BASE_DIR,
        ),
        spawn(
            [
                python,
                "-m",
                "celery",
                "-A",
                "opsportal",
                "worker",
                "--beat",
                "--loglevel",
                "INFO",
                "--concurrency",
                "2",
                "--schedule",
                str(settings.VAR_DIR / "celerybeat-schedule"),
            ],
            log=log_dir / "worker.log",
            env=env,
            cwd=BASE_DIR,
        ),
    ]
    stopping = False

    def shutdown(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGTERM, shutdown)
    try:
        wait_for(
            lambda: port_open(PORT, HOST),
            timeout=60,
            what="The web server",
            proc=procs[0],
            log=log_dir / "web.log",
        )
        print(
            f"OpsPortal is up: http://{HOST}:{PORT}/   (logs in {log_dir}; Ctrl-C stops everything)",
            flush=True,
        )
        while not stopping:
            for proc, name in zip(procs, ("web server", "worker"), strict=True):
                if proc.poll() is not None:
                    print(f"The {name} exited with code {proc.returncode}; see {log_dir}.", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        stop_all(procs)
        if pipeline is not None:
            pipeline.stop()


if __name__ == "__main__":
    sys.exit(main())
