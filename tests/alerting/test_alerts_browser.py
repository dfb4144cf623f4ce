"""The project alerts page in a real browser: the buttons post with HTMX and the page updates in place
(no navigation), with its message, and nothing breaks the Content-Security-Policy."""

import pytest

from tests.alerting.payloads import make_alert
from tests.browser import CspWatch, sign_in

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.services]


def test_the_owner_acknowledges_in_place_and_the_silence_form_explains_itself(
    people, chromium, daphne_server
):
    alert = make_alert(
        people.project,
        alertname="PodsNotReady",
        environment="test",
        fingerprint="00000000000000bb",
        severity="warning",
        annotations={"summary": "2 of 3 pods not ready"},
    )
    page = sign_in(chromium, daphne_server, people.owner.username)
    watch = CspWatch(page)
    page.goto(f"{daphne_server}/projects/orders/")
    page.click("#project-alerts-link")
    page.wait_for_selector(f"#alert-{alert.pk}")
    assert "2 of 3 pods not ready" in page.inner_text(f"#alert-{alert.pk}")
    page.evaluate("window.__notReloaded = true")
    page.click(f"#alert-{alert.pk} button.acknowledge")
    page.wait_for_selector("main .alert-success")
    assert "PodsNotReady acknowledged" in page.inner_text("main .alert-success")
    assert page.evaluate("window.__notReloaded === true")  # swapped by HTMX, not a page load
    assert page.locator(f"#alert-{alert.pk} button.acknowledge").count() == 0
    assert people.owner.username in page.inner_text(f"#alert-{alert.pk}")
    # This Daphne has no Alertmanager: the page says silences are off, and a silence attempt says why.
    assert "ALERTMANAGER_URL" in page.inner_text("#silences-error")
    page.fill(f"#alert-{alert.pk} input[name=comment]", "rolling out a fix")
    page.click(f"#alert-{alert.pk} .silence-form button")
    page.wait_for_selector("main .alert-danger")
    assert "No Alertmanager is configured" in page.inner_text("main .alert-danger")
    assert watch.violations() == []
    alert.refresh_from_db()
    assert alert.acknowledged_by == people.owner
    page.context.close()
