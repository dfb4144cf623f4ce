import os

import pytest

from sandbox.ci import in_ci

# Playwright's sync API runs an event loop in the test thread; the ORM calls in tests are still
# synchronous and safe. Only this process gets the flag: servers we start run without it.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytest_plugins = [
    "tests.fixtures.people",
    "tests.fixtures.services",
    "tests.fixtures.standins",
    "tests.fixtures.kube",
    "tests.fixtures.clusters",
    "tests.fixtures.pipeline",
    "tests.fixtures.demo",
    "tests.fixtures.prometheus",
    "tests.fixtures.alerting",
    "tests.fixtures.alertmanager",
    "tests.fixtures.apollo",
    "tests.fixtures.configs",
    "tests.fixtures.eureka",
    "tests.fixtures.kafka",
    "tests.fixtures.logproxy",
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"Skipped under CI=true, which must run everything: {report.longrepr}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    yield
    # Threads that ran in-process consumers (sync_to_async) keep their own connections, which would
    # stop pytest-django from dropping the per-run test database; end them first.
    from django.db import connection

    with django_db_blocker.unblock():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


@pytest.fixture(autouse=True)
def _default_language_after_each_test():
    """A request with Accept-Language activates its language in the test thread, and Django never
    deactivates it (a server thread re-activates per request): without this, a test after a Chinese page
    reads Chinese messages."""
    yield
    from django.utils import translation

    translation.deactivate()
