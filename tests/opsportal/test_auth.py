import pytest
from django.test import Client
from django.urls import reverse

from tests.fixtures.people import PASSWORD

pytestmark = pytest.mark.django_db


def test_login_then_dashboard(client, people):
    response = client.post(reverse("login"), {"username": people.developer.username, "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    page = client.get(reverse("dashboard"))
    assert page.status_code == 200
    assert "orders" in page.content.decode()


def test_wrong_password_gives_a_clear_message(client, people):
    response = client.post(reverse("login"), {"username": people.developer.username, "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()


def test_repeated_failures_lock_the_account_out(client, people, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": people.developer.username, "password": "wrong"})
    locked = client.post(reverse("login"), {"username": people.developer.username, "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed sign-in attempts" in locked.content.decode()
    # Someone else from the same address is not locked out by it.
    other = client.post(reverse("login"), {"username": people.tester.username, "password": PASSWORD})
    assert other.status_code == 302


def test_csrf_is_enforced_with_a_friendly_page(people):
    client = Client(enforce_csrf_checks=True)
    response = client.post(reverse("login"), {"username": people.developer.username, "password": PASSWORD})
    assert response.status_code == 403
    assert 'id="csrf-failure"' in response.content.decode()


def test_unknown_url_gets_a_friendly_404(client, people):
    client.force_login(people.developer)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert 'id="not-found"' in response.content.decode()


def test_pages_need_login(client):
    response = client.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_logout_needs_post_and_signs_out(client, people):
    client.force_login(people.developer)
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("dashboard")).status_code == 302


@pytest.mark.parametrize(
    "url",
    [
        "/?page=abc",
        "/projects/?page=-1&scope=../../etc&q=%00",
        "/projects/orders/?tab=<script>",
        "/projects/%E2%80%8B/",
        "/audit/?since=yesterday&until=2020-13-45&page=zz",
        "/audit/?since=2026-01-02T00:00&until=2026-01-01T00:00",
        "/api/projects/?scope=x&page=9999",
        "/api/audit-events/?since=garbage",
        "/api/projects/orders/members/",
    ],
)
def test_odd_input_never_gives_500(client, people, url):
    client.force_login(people.developer)
    response = client.get(url)
    assert response.status_code in {200, 302, 400, 404}, response.content[:300]


def test_language_switch_with_a_foreign_next_url_stays_on_site(client, people):
    client.force_login(people.developer)
    response = client.post(reverse("set-language"), {"language": "zh-hans", "next": "https://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == "/"
