"""The API as one user sees it: DRF's test client, authenticated as ``user``."""

from rest_framework.test import APIClient


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client
