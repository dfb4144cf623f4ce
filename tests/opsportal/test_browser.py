"""The main path in a real browser: sign in, see the dashboard, watch the worker answer live."""

import pytest

from tests.fixtures.people import PASSWORD

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.services]


def test_login_dashboard_and_live_worker_answer(people, page, daphne_server, celery_worker_process):
    page.goto(f"{daphne_server}/")
    assert "/login/" in page.url
    page.fill("#id_username", people.developer.username)
    page.fill("#id_password", "wrong-password")
    page.click("button[type=submit]")
    assert page.locator("#login-error").is_visible()

    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#dashboard-title")
    assert page.locator("text=orders").first.is_visible()
    page.wait_for_selector("body[data-live-state=open]")

    page.click("#worker-ping")
    page.wait_for_selector("#worker-status:has-text('answered in')")
    # A second check works the same (the answer never gets overwritten by the queued note).
    page.click("#worker-ping")
    page.wait_for_function(
        "() => document.getElementById('worker-status').textContent.includes('answered in')"
    )


def test_chinese_browser_gets_chinese_pages(people, chromium, daphne_server):
    context = chromium.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(f"{daphne_server}/login/")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert page.locator("h1").inner_text() == "登录 OpsPortal"
    context.close()
