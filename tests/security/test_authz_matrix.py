"""Every URL pattern × accepted method × role against the one policy table (tests/security/policy.py).

The URL list comes from Django's resolver, so a new URL without a policy row fails here. Requests go
through Django's test client in the test's transaction, each in a savepoint rolled back afterwards, so
one role's POST does not change what the next role meets; nothing is committed, so no task is queued.
"""

import json
import time

import pytest
import yaml
from django.db import transaction
from django.test import Client
from django.urls import resolve

from tests.security.policy import POLICY, ROLES, Rule
from tests.security.routes import example_kwargs, example_path, url_patterns
from tests.security.world import World

pytestmark = pytest.mark.django_db

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def rules_for(route: str, method: str) -> list[Rule]:
    exact = [r for r in POLICY if r.method == method and "*" not in r.route and r.matches(route)]
    return exact or [r for r in POLICY if r.method == method and "*" in r.route and r.matches(route)]


def send(world: World, role: str, method: str, path: str, data: dict, api: bool):
    """One request as the role, in a savepoint rolled back afterwards."""
    client = Client(raise_request_exception=False)
    with transaction.atomic():
        user = world.user(role)
        if user is not None:
            client.force_login(user)
        if api:
            body = json.dumps(data) if method != "GET" else None
            response = client.generic(method, path, body or "", content_type="application/json")
        elif method == "GET":
            response = client.get(path)
        else:
            response = client.generic(
                method, path, _form(data), content_type="application/x-www-form-urlencoded"
            )
        transaction.set_rollback(True)
    return response


def _form(data: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(data)


def _is_error_shape(response) -> bool:
    try:
        # The schema view renders its errors as YAML, the rest as JSON (YAML reads both).
        body = yaml.safe_load(response.content)
    except yaml.YAMLError:
        return False
    return (
        isinstance(body, dict)
        and isinstance(body.get("detail"), str)
        and isinstance(body.get("errors"), dict)
    )


def verdict(expected: str, response, api: bool) -> str | None:
    """None when the answer is of the expected class, else what was wrong."""
    status = response.status_code
    location = response.get("Location", "")
    # 502 is the portal's answer when the cluster behind the action cannot be reached (the world's cluster
    # never can): in the API with the one error shape, on a page with the portal's own message.
    if status >= 500 and not (status == 502 and (_is_error_shape(response) if api else True)):
        return f"server error {status}"
    if api and status >= 400 and not _is_error_shape(response):
        return f"{status} without the one error shape"
    if expected == "login":
        ok = status in (401, 403) if api else status == 302 and location.startswith("/login/")
    elif expected == "admin-login":
        ok = status == 302 and location.startswith("/admin/login/")
    elif expected == "hidden":
        ok = status == 404
    elif expected == "denied":
        ok = status == 403
    elif expected == "allowed":
        ok = status not in (401, 403, 404, 405) and not location.startswith(("/login/", "/admin/login/"))
    else:  # reachable
        ok = status < 500
    return None if ok else f"expected {expected}, got {status} {location}".rstrip()


def accepted_methods(world: World, path: str, api: bool) -> set[str]:
    """The methods the view answers: everything but 405 for a superuser, who passes every check. Pages
    and the admin are asked only what browsers send (GET and POST)."""
    candidates = METHODS if api else ("GET", "POST")
    return {m for m in candidates if send(world, "superuser", m, path, {}, api).status_code != 405}


# One test walks every URL × method × role (thousands of requests); it took 302 s, past the suite's 300 s
# default, while the machine was busy with other test sessions.
@pytest.mark.timeout(900)
def test_every_url_method_and_role_matches_the_policy(world):
    started = time.monotonic()
    problems: list[str] = []
    used: set[int] = set()
    requests = 0
    for route, pattern in url_patterns():
        api = route.startswith("api/") and route != "api/docs/"  # the docs are a page
        probe_kwargs = example_kwargs(route, Rule(route, "GET", frozenset()), world)
        probe_path = example_path(route, probe_kwargs)
        if resolve(probe_path).func is not pattern.callback:
            problems.append(f"{route}: the example path {probe_path} resolves elsewhere")
            continue
        methods = accepted_methods(world, probe_path, api)
        requests += len(METHODS) if api else 2
        for method in sorted(methods):
            rules = rules_for(route, method)
            if not rules:
                problems.append(f"{method} {route}: no policy row (add one to tests/security/policy.py)")
                continue
            for rule in rules:
                used.add(id(rule))
                path = example_path(route, example_kwargs(route, rule, world))
                data = {key: value(world) if callable(value) else value for key, value in rule.data.items()}
                for role in ROLES:
                    response = send(world, role, method, path, data, api)
                    requests += 1
                    wrong = verdict(rule.expected(role), response, api)
                    if wrong:
                        problems.append(f"{method} {path} as {role}: {wrong}")
    unmatched = [f"{r.method} {r.route}" for r in POLICY if id(r) not in used]
    problems += [f"policy row matches no URL and method: {row}" for row in sorted(set(unmatched))]
    elapsed = time.monotonic() - started
    print(f"authorization matrix: {requests} requests in {elapsed:.1f} s")
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems)
