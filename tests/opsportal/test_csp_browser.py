"""The Content-Security-Policy in Chromium: the main pages, HTMX, xterm.js and Swagger UI work under it,
and any violation fails the test."""

import pytest

from tests.browser import CspWatch, sign_in
from tests.helpers.environments import provision

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.services]


def _visit(page, url: str, ready: str) -> None:
    page.goto(url)
    page.wait_for_selector(ready, state="attached")
    page.wait_for_timeout(300)  # let late scripts (live connection, htmx) run


def test_main_pages_and_api_docs_have_no_csp_violations(people, chromium, daphne_server):
    page = sign_in(chromium, daphne_server, people.owner.username)
    watch = CspWatch(page)
    response = page.goto(f"{daphne_server}/")
    policy = response.headers["content-security-policy"]
    assert (
        "script-src 'self' 'nonce-" in policy
        and "unsafe-inline" not in policy
        and "unsafe-eval" not in policy
    )
    page.wait_for_selector("#live-status[data-state=open]")
    _visit(page, f"{daphne_server}/projects/orders/", "dl")
    _visit(page, f"{daphne_server}/projects/orders/?tab=members", "#member-table")
    _visit(page, f"{daphne_server}/projects/orders/tickets/new/", "form")
    _visit(page, f"{daphne_server}/tickets/", "table, form")
    _visit(page, f"{daphne_server}/audit/", "table, main")
    # Swagger UI renders the schema (its setup script is a file, its style block has the nonce).
    _visit(page, f"{daphne_server}/api/docs/", ".swagger-ui .info")
    page.wait_for_selector(".opblock-tag")
    assert watch.violations() == []

    # Behaviours that used to be inline attributes still work: a refused confirm keeps the member.
    _visit(page, f"{daphne_server}/projects/orders/?tab=members", "#member-table")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.locator("form[data-confirm] button").first.click()
    page.wait_for_timeout(500)
    assert page.locator("form[data-confirm]").count() >= 1
    # Choosing a language submits its form.
    page.click("#user-menu")
    with page.expect_navigation():
        page.select_option("#language-form select", "zh-hans")
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    assert watch.violations() == []


@pytest.mark.kube
def test_environment_and_terminal_pages_have_no_csp_violations(
    people, local_clusters, kube_cluster, chromium, daphne_server
):
    provision(people, local_clusters["test"])
    page = sign_in(chromium, daphne_server, people.developer.username)
    watch = CspWatch(page)
    _visit(page, f"{daphne_server}/projects/orders/env/test/", "#env-live[data-state=open]")
    page.wait_for_selector("#pod-rows tr[data-pod]")
    _visit(page, f"{daphne_server}/projects/orders/env/test/terminal/", "#pod-select")
    pod = page.locator("#pod-select option").nth(1).get_attribute("value")
    page.select_option("#pod-select", pod)
    page.click("#terminal-target button")
    page.wait_for_selector("#terminal .xterm")
    page.wait_for_timeout(1000)
    assert watch.violations() == []
