"""The environment page's Eureka section in a real browser: loaded after the page, ops take an instance
out of service and back with the buttons, the real Eureka server agrees, and nothing breaks the CSP."""

import pytest

from clusters.models import Cluster
from tests.browser import CspWatch, sign_in
from tests.helpers.environments import provision
from tests.helpers.eureka import instance, register

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
    pytest.mark.services,
    pytest.mark.kube,
]


def test_ops_use_the_eureka_section(
    people, local_clusters, chromium, daphne_server, eureka_server, unique_app
):
    cluster = local_clusters["test"]
    provision(people, cluster, wait=False, env_vars=[["EUREKA_APP", unique_app]])
    Cluster.objects.filter(pk=cluster.pk).update(eureka_url=eureka_server.eureka_url)
    url = eureka_server.eureka_url
    instance_id = register(url, unique_app, "192.0.2.10")  # an instance outside the cluster (a VM)

    page = sign_in(chromium, daphne_server, people.ops.username)
    csp = CspWatch(page)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{daphne_server}/projects/orders/env/test/")
    row = page.locator(f'#eureka-table tr[data-instance="{instance_id}"]')
    row.wait_for()
    assert row.get_attribute("data-status") == "UP"
    assert "not a pod here" in row.inner_text()

    row.locator("button[data-action=out-of-service]").click()
    page.wait_for_selector(f'#eureka-table tr[data-instance="{instance_id}"][data-status="OUT_OF_SERVICE"]')
    assert page.locator("#eureka-result[data-ok=true]").count() == 1
    assert instance(url, unique_app, instance_id)["overriddenStatus"] == "OUT_OF_SERVICE"

    page.locator(f'#eureka-table tr[data-instance="{instance_id}"] button[data-action=up]').click()
    page.wait_for_selector(f'#eureka-table tr[data-instance="{instance_id}"][data-status="UP"]')
    assert instance(url, unique_app, instance_id)["overriddenStatus"] == "UNKNOWN"
    assert csp.violations() == []
