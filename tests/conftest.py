import os

import pytest

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
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"Skipped under CI=true, which must run everything: {report.longrepr}"
