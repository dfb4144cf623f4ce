"""The cockpit in Chromium: the overview shows it, a release event updates its release parts live while
the cluster part keeps its place, and an environment event reloads it."""

import pytest
from django.db import transaction

from clusters.models import ProjectEnvironment
from deploys.models import Release
from observability import events
from opsportal import runs
from tests.browser import CspWatch, sign_in
from tests.helpers.cockpit import history, make_environment, make_release

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.services]


def test_cockpit_shows_the_environments_and_follows_a_release(people, chromium, daphne_server):
    make_environment(people, "test")
    history(people, 1)
    page = sign_in(chromium, daphne_server, people.developer.username)
    watch = CspWatch(page)
    page.goto(f"{daphne_server}/projects/orders/")
    page.wait_for_selector("body[data-live-state=open]")
    version = page.locator("#cockpit-db-test [data-field=version]")
    version.wait_for()
    assert version.inner_text() == "v1"
    assert page.locator("#cockpit-prod [data-field=not-onboarded]").is_visible()
    assert page.locator("#cockpit-prod a[data-link=onboard]").is_visible()
    # The cluster behind the test environment does not answer: its part says so, the page stands.
    page.wait_for_selector("#cockpit-live-test [data-state=unavailable]")
    page.wait_for_selector("#cockpit-traffic-test [data-state=off]")
    assert page.locator("#cockpit-links-test a[data-link=terminal]").is_visible()
    # Marked, to see that a release event does not reload the live part.
    page.evaluate("() => document.getElementById('cockpit-live-test').dataset.marker = 'kept'")

    with transaction.atomic():
        release = make_release(people, "v2", status="building")
        runs.publish(release)  # what every release step announces on the project's stream

    page.wait_for_selector("#cockpit-db-test [data-field=in-flight][data-status=building]")
    assert "v2" in page.locator("#cockpit-db-test [data-field=in-flight]").inner_text()
    assert page.locator(f"#cockpit-db-test tr[data-release='{release.pk}']").count() == 1
    assert page.evaluate("() => document.getElementById('cockpit-live-test').dataset.marker") == "kept"

    with transaction.atomic():
        Release.objects.filter(pk=release.pk).update(status="failed")
        release.refresh_from_db()
        runs.publish(release)
    page.wait_for_selector(f"#cockpit-db-test tr[data-release='{release.pk}'] [data-status=failed]")
    assert page.locator("#cockpit-db-test [data-field=in-flight]").count() == 0

    # An environment torn down: its event reloads the whole cockpit, which offers onboarding again.
    ProjectEnvironment.objects.filter(project=people.project, environment="test").delete()
    events.publish(
        stream=events.project_stream(people.project.pk),
        type="environment-changed",
        payload={"environment": "test", "verb": "environment.teardown"},
    )
    page.wait_for_selector("#cockpit-test[data-onboarded=false] a[data-link=onboard]")
    assert page.locator("#cockpit-live-test").count() == 0
    assert watch.violations() == []
    page.context.close()
