"""The environment page's "from the log pipeline" view in a real browser: records produced to Kafka under
the environment's key appear in the live tail within seconds, parsed (level coloured, fields, the raw JSON
on demand), and the search finds them; nothing breaks the Content-Security-Policy."""

import time
import uuid

import pytest

from tests.browser import CspWatch, sign_in
from tests.helpers.log_pipeline import line, pipeline_environment, produce

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.services]


def test_lines_pushed_for_the_environment_appear_live_and_in_the_search(
    people, kafka_server, chromium, daphne_server, celery_worker_process
):
    env = pipeline_environment(people, kafka_server.bootstrap)
    topic = env.cluster.log_pipeline.default_topic
    page = sign_in(chromium, daphne_server, people.viewer.username)
    csp = CspWatch(page)
    page.goto(f"{daphne_server}/projects/orders/env/test/")
    page.click("#pipeline-tail-start")
    page.wait_for_selector('#pipeline-tail-status[data-state="live"]')

    mark = uuid.uuid4().hex[:8]
    started = time.monotonic()
    produce(
        kafka_server.bootstrap,
        topic,
        [
            ("logs:orders:test", line("ERROR", f"{mark} payment failed", order=42)),
            ("logs:orders:test", f"{mark} not json".encode()),
            ("logs:billing:test", line("ERROR", f"{mark} not ours")),
        ],
    )
    error = page.locator("#pipeline-tail-lines li.pipeline-line", has_text=f"{mark} payment failed")
    error.wait_for(timeout=10_000)
    assert time.monotonic() - started < 10
    page.locator("#pipeline-tail-lines li", has_text=f"{mark} not json").wait_for(timeout=5_000)
    assert error.get_attribute("data-level") == "ERROR"
    assert "text-bg-danger" in error.locator(".pipeline-level").get_attribute("class")
    assert "order=42" in error.inner_text()
    error.locator("details.pipeline-raw summary").click()
    assert '"order": 42' in error.locator("details.pipeline-raw pre").inner_text()
    assert page.locator("#pipeline-tail-lines li", has_text=f"{mark} not ours").count() == 0

    page.select_option("#pipeline-level", "ERROR")
    page.fill("#pipeline-q", mark)
    page.click("#pipeline-search-button")
    found = page.locator("#pipeline-search-lines li.pipeline-line", has_text=f"{mark} payment failed")
    found.wait_for(timeout=10_000)
    assert page.locator("#pipeline-search-lines li.pipeline-line").count() == 1

    page.click("#pipeline-tail-stop")
    page.wait_for_selector('#pipeline-tail-status[data-state="off"]')
    assert csp.violations() == []
