"""Defects the suites found, each pinned: a member lacking the right heard 400 (what to fix in the input)
instead of 403; read-only pages answered POST as if it were GET (authorization matrix); a UTC offset
beyond PostgreSQL's range was a 500 (schemathesis)."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("role", "path"),
    [
        ("viewer", "/api/projects/orders/tickets/"),
        ("tester", "/api/projects/orders/tickets/"),
        ("developer", "/api/projects/orders/tickets/{ticket}/reject/"),
        ("owner", "/api/projects/orders/tickets/{ticket}/approve/"),
        ("viewer", "/api/projects/orders/releases/"),
    ],
)
def test_a_member_lacking_the_right_gets_403_whatever_the_body(client, world, role, path):
    client.force_login(world.user(role))
    response = client.post(path.format(ticket=world.ticket.pk), {}, content_type="application/json")
    assert response.status_code == 403
    assert response.json()["errors"] == {}


@pytest.mark.parametrize(
    "path",
    ["/", "/projects/", "/projects/orders/", "/audit/", "/tickets/", "/releases/", "/recipes/"],
)
def test_read_only_pages_refuse_post(client, world, path):
    client.force_login(world.people.ops)
    assert client.get(path).status_code == 200
    assert client.post(path).status_code == 405


@pytest.mark.parametrize("path", ["/api/audit-events/", "/audit/"])
def test_audit_filter_times_with_any_offset_are_not_a_server_error(client, people, path):
    client.force_login(people.ops)
    # +21:45 is a valid offset for Python, out of range for PostgreSQL.
    response = client.get(path, {"since": "0955-01-17T11:13:03+21:45"})
    assert response.status_code == 200
    # In UTC this is before the year 1.
    too_early = client.get(path, {"since": "0001-01-01T00:00:00+01:00"})
    assert too_early.status_code in (200, 400)
    if path.startswith("/api/"):
        assert too_early.status_code == 400
        assert "since" in too_early.json()["errors"]
