"""How many releases two worker processes carry at once while Jenkins builds, and whether a short task
(the stand-in for a provisioning or a config change step) still gets a worker meanwhile:
``python -m sandbox.testenv -- python -m bench releases``.

Two real ``celery worker --pool solo`` processes (one slot each) serve a private queue. N releases of N
projects are put in their build step at once (release_build queued for each); every build runs a
shell that sleeps BUILD seconds in the Jenkins stand-in and then fails, so no image registry or
cluster is needed and the outcome is the same before and after. Meanwhile a probe task (the worker
ping) is queued every 2 s; its latency is the wait for a free slot. Sampled every 0.25 s: how many
Jenkins builds of these releases run at once.

The script uses only what the code before and after the change both have (the release_build task and
the Release row), so it measures either tree: run it from a checkout of each.
"""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

RELEASES = int(os.environ.get("BENCH_RELEASES", "8"))
BUILD_SECONDS = int(os.environ.get("BENCH_BUILD_SECONDS", "20"))
WORKERS = 2
PROBE_EVERY = 2.0


def _database_url(db: dict) -> str:
    return f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def main() -> int:
    queue = f"bench-releases-{os.getpid()}"
    os.environ["TEST_CELERY_QUEUE"] = queue  # this process sends to the queue its workers serve
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsportal.settings_test")
    import django

    django.setup()
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    test_db = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        return run(queue)
    finally:
        connection.close()
        connection.creation.destroy_test_db(test_db, verbosity=0)


def run(queue: str) -> int:
    from django.conf import settings
    from django.contrib.auth.models import Group, User

    from clusters.models import ProjectEnvironment
    from deploys.models import BuildRecipe, Release
    from deploys.tasks import release_build
    from observability.models import LiveEvent
    from observability.tasks import answer_worker_ping
    from projects import services as project_services
    from sandbox.pipeline import SandboxPipeline
    from sandbox.procs import spawn, stop, wait_for

    work = Path(tempfile.mkdtemp(prefix="bench-releases-"))
    pipeline = SandboxPipeline(work / "pipeline").start()
    workers = []
    try:
        env = {
            **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
            **pipeline.settings(),
            "DJANGO_SETTINGS_MODULE": "opsportal.settings_test",
            "DATABASE_URL": _database_url(settings.DATABASES["default"]),
            "TEST_CELERY_QUEUE": queue,
        }
        for n in range(WORKERS):
            log = work / f"worker-{n}.log"
            args = ["-m", "celery", "-A", "opsportal", "worker", "--pool", "solo", "--queues", queue]
            args += ["--hostname", f"{queue}-{n}@%h", "--loglevel", "INFO"]
            proc = spawn([sys.executable, *args], log=log, env=env, cwd=settings.BASE_DIR)
            workers.append(proc)
            wait_for(lambda log=log: log.exists() and "ready." in log.read_text(), timeout=120, what="worker")

        ops = User.objects.create_user("bench-ops")
        ops.groups.add(Group.objects.get_or_create(name="ops")[0])
        dev = User.objects.create_user("bench-dev")
        recipe = BuildRecipe.objects.filter(language="go").first()
        recipe = BuildRecipe.objects.create(
            language="go",
            version=recipe.version + 1,
            dockerfile=recipe.dockerfile,
            build_shell=f'echo "==> bench build"\nsleep {BUILD_SECONDS}\necho "==> done"\nexit 1',
            comment="bench",
        )
        releases = []
        for n in range(RELEASES):
            name = f"bench-{n}"
            project = project_services.project_create(
                actor=ops, name=name, owner=dev, language="go", gitlab_repository=f"demo/{name}"
            )
            pipeline.add_repository(f"demo/{name}")
            ProjectEnvironment.objects.create(project=project, environment="test", spec={})
            releases.append(
                Release.objects.create(
                    project=project,
                    environment="test",
                    created_by=dev,
                    branch="main",
                    version=f"bench-{n}",
                    status="building",
                    recipe=recipe,
                    image_repository=name,
                    jenkins_job=name,
                )
            )

        started = time.monotonic()
        for release in releases:
            release_build.delay(release_id=release.pk, run_token=str(release.run_token))
        names = {r.jenkins_job for r in releases}
        samples, probes, build_started = [], [], {}
        next_probe = started
        while True:
            now = time.monotonic()
            running = 0
            for name in names:
                job = pipeline.jenkins.jobs.get(name)
                for build in list(job.builds.values()) if job else ():  # the stand-in's threads add builds
                    build_started.setdefault(name, now - started)
                    running += bool(build.building)
            samples.append(running)
            if now >= next_probe:
                answer_worker_ping.delay(user_id=ops.pk, sent_at=time.time())
                probes.append(now)
                next_probe += PROBE_EVERY
            if not Release.objects.filter(pk__in=[r.pk for r in releases], status="building").exists():
                break
            if now - started > RELEASES * (BUILD_SECONDS + 30):
                print("timed out waiting for the releases", file=sys.stderr)
                break
            time.sleep(0.25)
        wall = time.monotonic() - started
        time.sleep(3)  # the last probes' answers
        pongs = [
            e.payload["latency_ms"] / 1000
            for e in LiveEvent.objects.filter(stream=f"user.{ops.pk}", type="worker-pong")
        ]
        outcomes = {}
        for release in Release.objects.filter(pk__in=[r.pk for r in releases]):
            key = release.status + (": build ended FAILURE" if "ended FAILURE" in release.error else "")
            outcomes[key] = outcomes.get(key, 0) + 1
        results = [
            ("releases started at once", RELEASES),
            ("build length (s)", BUILD_SECONDS),
            ("worker processes (solo pool, one slot each)", WORKERS),
            ("most Jenkins builds running at the same time", max(samples)),
            ("last build started after (s)", round(max(build_started.values(), default=0), 1)),
            ("all releases out of 'building' after (s)", round(wall, 1)),
            ("probe tasks sent / answered", f"{len(probes)} / {len(pongs)}"),
            ("probe wait for a slot, median (s)", round(statistics.median(pongs), 2) if pongs else "-"),
            ("probe wait for a slot, max (s)", round(max(pongs), 2) if pongs else "-"),
            ("release outcomes", ", ".join(f"{k} × {v}" for k, v in sorted(outcomes.items()))),
        ]
        print("| measure | value |\n|---|---|")
        for name, value in results:
            print(f"| {name} | {value} |")
        return 0
    finally:
        for proc in workers:
            stop(proc)
        pipeline.stop()


if __name__ == "__main__":
    sys.exit(main())
