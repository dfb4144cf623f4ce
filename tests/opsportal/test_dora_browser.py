"""The DORA charts in Chromium, under the CSP: drawn on the project overview, drawn again when the period
changes, and on the ops overview."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.browser import CspWatch, sign_in
from tests.helpers.dora import seed

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.services]


def test_the_dora_charts_are_drawn_and_follow_the_period(people, chromium, daphne_server):
    # D1 to D5 a little less than 7 days back: in both the 7 and the 30 days; D0 only in the 30.
    seed(people, timezone.now() - timedelta(days=7) + timedelta(minutes=1))
    page = sign_in(chromium, daphne_server, people.developer.username)
    watch = CspWatch(page)
    page.goto(f"{daphne_server}/projects/orders/")
    page.wait_for_selector("#dora-figures[data-days='30'][data-environment=prod]")
    page.wait_for_selector("#dora .dora-chart[data-chart=daily][data-state=drawn] canvas")
    assert page.locator("#dora .dora-chart[data-chart=lead_time]").get_attribute("data-points") == "4"
    assert page.locator("#dora .dora-chart[data-chart=restore]").get_attribute("data-points") == "3"
    assert page.locator("#dora [data-figure=rate]").inner_text() == "67 %"

    page.click("#dora-period a[data-days='7']")
    page.wait_for_selector("#dora-figures[data-days='7']")
    page.wait_for_selector("#dora .dora-chart[data-chart=restore][data-state=drawn] canvas")
    assert page.locator("#dora .dora-chart[data-chart=lead_time]").get_attribute("data-points") == "3"
    assert page.locator("#dora [data-figure=rate]").inner_text() == "80 %"
    assert page.locator("#dora .dora-chart canvas").count() == 3  # the old charts went with the old fragment

    # The test environment had one deployment, no restore yet: that chart says there is nothing to draw.
    page.click("#dora-environment a[data-environment=test]")
    page.wait_for_selector("#dora-figures[data-environment=test]")
    page.wait_for_selector("#dora .dora-chart[data-chart=restore][data-state=empty]")
    assert page.locator("#dora .dora-chart[data-chart=lead_time]").get_attribute("data-points") == "1"
    assert watch.violations() == []
    page.context.close()

    page = sign_in(chromium, daphne_server, people.ops.username)
    watch = CspWatch(page)
    page.goto(f"{daphne_server}/dora/?days=7")
    page.wait_for_selector(".dora-chart[data-chart=daily][data-state=drawn] canvas")
    assert page.locator(".dora-chart[data-chart=lead_time]").get_attribute("data-points") == "4"
    assert page.locator("#dora-projects tr[data-project]").count() == 2
    assert watch.violations() == []
    page.context.close()
