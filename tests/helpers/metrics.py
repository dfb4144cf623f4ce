"""Reading the portal's own /metrics (opsportal.metrics) as Prometheus does: with the monitoring token."""

import requests
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families


def get_metrics(base_url: str, token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.get(f"{base_url}/metrics", headers=headers, timeout=10)


def scrape(base_url: str) -> str:
    response = get_metrics(base_url, settings.MONITORING_TOKEN)
    assert response.status_code == 200, response.text
    return response.text


def sample(text: str, name: str, **labels) -> float:
    """The value of one sample of the exposition (0 when it is not there yet)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0
