"""The Apollo namespace page in a real browser: adding, editing, releasing and rolling back post with
HTMX and the section updates in place (no navigation), each confirmation says what it will do, and
nothing breaks the Content-Security-Policy."""

import pytest

from tests.browser import CspWatch, sign_in
from tests.fixtures.services import running_daphne

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.services]


def test_a_developer_works_a_namespace_in_place(people, chromium, apollo_project, tmp_path):
    with running_daphne(tmp_path, APOLLO_PORTAL_URL=apollo_project.server.url) as portal:
        page = sign_in(chromium, portal, people.developer.username)
        watch = CspWatch(page)
        dialogs: list[str] = []

        def accept(dialog):
            dialogs.append(dialog.message)
            dialog.accept()

        page.on("dialog", accept)
        page.goto(f"{portal}/projects/orders/")
        page.click("#project-apollo-link")
        page.click("#apollo-namespaces a[href$='/apollo/test/application/']")
        page.wait_for_selector("#apollo-item-create")
        page.evaluate("window.__notReloaded = true")

        page.fill("#id_create_key", "greeting")
        page.fill("#id_create_value", "hello")
        page.click("#apollo-item-add")
        page.wait_for_selector("#apollo-notice")
        assert "greeting added" in page.inner_text("#apollo-notice")
        assert apollo_project.item("greeting")["dataChangeCreatedBy"] == people.developer.username

        row = page.locator("#apollo-items tr[data-key='greeting']")
        row.locator("summary").click()
        row.locator("textarea[name=value]").fill("hello, world")
        row.locator("form.apollo-item-edit button").click()
        page.wait_for_selector("#apollo-notice:has-text('greeting saved')")
        assert apollo_project.item("greeting")["value"] == "hello, world"

        for title in ("first", "second"):
            page.fill("#id_release_title", title)
            page.click("#apollo-release")
            page.wait_for_selector(f"#apollo-notice:has-text('{title}')")
        latest = apollo_project.latest()
        assert latest["name"] == "second" and latest["dataChangeCreatedBy"] == people.developer.username

        page.click(f"#apollo-history tr[data-release='{latest['id']}'] .apollo-rollback button")
        page.wait_for_selector("#apollo-notice:has-text('Rolled back 1 release')")
        assert apollo_project.latest()["name"] == "first"
        assert (
            dialogs[-1] == f"Roll back release #{latest['id']}? The release before it becomes current again."
        )
        assert any(d.startswith("Release application now?") for d in dialogs)
        assert page.evaluate("window.__notReloaded === true")  # swapped by HTMX, never a page load
        assert watch.violations() == []
        page.context.close()
