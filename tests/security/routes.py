"""Every URL the resolver knows, and an example path for each made of the world's objects."""

import re

from django.urls import URLPattern, URLResolver, get_resolver

from tests.security.policy import Rule
from tests.security.world import World

_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def url_patterns(patterns=None, prefix: str = ""):
    """(route, pattern) for every endpoint the resolver knows, includes walked."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from url_patterns(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry


def example_kwargs(route: str, rule: Rule, world: World) -> dict:
    values = {
        **world.example_values(),
        # The admin's object ids: a user (the pages the admin has for everything but a missing object).
        "object_id": str(world.people.viewer.pk),
        "id": str(world.people.viewer.pk),
        "content_type_id": "1",
        "action": "submit",
        "app_label": "projects",
        "url": "nowhere/",
        "cluster": "any",  # Prometheus' discovery refuses before it looks the cluster up
        **rule.kwargs,
    }
    kwargs = {}
    for match in _PARAM.finditer(route):
        name = match["name"]
        if name == "pk":
            kwargs[name] = world.pk_in(route, "<int:pk>")
            assert kwargs[name], f"No object for <int:pk> in {route}: add one to World.pk_in."
        elif name in values:
            kwargs[name] = values[name]
        else:
            raise AssertionError(f"No example value for <{name}> in {route}: add one to example_kwargs.")
    return kwargs


def example_path(route: str, kwargs: dict) -> str:
    if "(?P<app_label>" in route:
        return "/admin/projects/"
    if "(?P<url>" in route:
        return "/admin/nowhere/"
    return "/" + _PARAM.sub(lambda m: str(kwargs[m["name"]]), route)
