"""Who may use every URL of the portal: the one policy table the authorization matrix checks.

One row per URL pattern (its route, as Django's resolver writes it) and HTTP method: the roles for
whom the request is allowed. Everyone else gets what the row's kind says (see ``Rule.expected``):

- anonymous: pages redirect to the login page, the API answers 401/403, the admin redirects to its login;
- a role that may not see the object (an outsider on a project; anyone but ops on ops-only things): 404;
- a role that sees the object but lacks the right: 403.

Adding a URL means adding a line here, e.g.::

    project("projects/<str:name>/grants/", "GET", OPS),

A row whose route is exact wins over glob rows for the same pattern and method. The matrix fails for a
URL pattern or an accepted method without a row, and for a row that matches no URL.
"""

from dataclasses import dataclass, field
from fnmatch import fnmatchcase

ROLES = ("anonymous", "outsider", "viewer", "developer", "tester", "owner", "ops", "superuser")
OPS = frozenset({"ops", "superuser"})
MEMBERS = frozenset({"viewer", "developer", "tester", "owner"}) | OPS
SIGNED_IN = MEMBERS | {"outsider"}
EVERYONE = SIGNED_IN | {"anonymous"}
FILERS = frozenset({"developer", "owner"}) | OPS  # file tickets, release, operate and open terminals on test
OWNERS = frozenset({"owner"}) | OPS
CONFIRMERS = frozenset({"tester"}) | OPS
SESSION_READERS = frozenset({"developer", "owner"}) | OPS  # of a test session the developer opened


@dataclass(frozen=True)
class Rule:
    route: str  # the resolver's route; a glob (fnmatch) for families of patterns such as the admin's
    method: str
    allowed: frozenset[str]
    # Roles that get 404 (may not know the object exists) rather than 403.
    hidden: frozenset[str] = frozenset()
    # URL arguments this row sets (e.g. the environment or the action); the rest come from the world.
    kwargs: dict = field(default_factory=dict, hash=False)
    # The request body (form fields for pages, JSON for the API) when an empty one would not reach
    # the access check. Values may be callables of the world.
    data: dict = field(default_factory=dict, hash=False)
    admin: bool = False
    expect_any: bool = False  # every role: any answer but a server error
    # A machine endpoint (Prometheus'): a session is no credential, so every role is denied (403); its own
    # tests check the token and the networks.
    machine: bool = False

    def matches(self, route: str) -> bool:
        return fnmatchcase(route, self.route) if "*" in self.route else route == self.route

    def expected(self, role: str) -> str:
        if self.expect_any:
            return "reachable"
        if self.machine:
            return "denied"
        if role in self.allowed:
            # In the admin, a superuser may still meet 403 (read-only models) or 404 (a missing object).
            return "reachable" if self.admin else "allowed"
        if self.admin:
            return "admin-login"  # the admin sends everyone but staff to its own login page
        if role == "anonymous":
            return "login"
        return "hidden" if role in self.hidden else "denied"


def _rows(route, methods, allowed, hidden, **extra) -> list[Rule]:
    return [Rule(route, method, frozenset(allowed), frozenset(hidden), **extra) for method in methods.split()]


def public(route: str, methods: str) -> list[Rule]:
    return _rows(route, methods, EVERYONE, ())


def signed_in(route: str, methods: str) -> list[Rule]:
    """Anyone signed in; what they see is filtered to their projects."""
    return _rows(route, methods, SIGNED_IN, ())


def project(route: str, methods: str, allowed=MEMBERS, **extra) -> list[Rule]:
    """A project's object: outsiders do not see the project at all."""
    return _rows(route, methods, allowed, SIGNED_IN - MEMBERS, **extra)


def ops_only(route: str, methods: str) -> list[Rule]:
    """Only ops may know it exists (clusters, build recipes)."""
    return _rows(route, methods, OPS, SIGNED_IN - OPS)


def ops_right(route: str, methods: str) -> list[Rule]:
    """A right only ops have on something everyone sees."""
    return _rows(route, methods, OPS, ())


def reachable(route: str, methods: str, *, admin: bool = False) -> list[Rule]:
    """Anyone, with any answer but a server error (logging out, which sends everyone to a login page)."""
    return [Rule(route, m, frozenset(ROLES), expect_any=True, admin=admin) for m in methods.split()]


def machine(route: str, methods: str, **extra) -> list[Rule]:
    return [Rule(route, m, frozenset(), machine=True, **extra) for m in methods.split()]


def admin_site(route: str, methods: str = "GET") -> list[Rule]:
    return _rows(route, methods, {"superuser"}, (), admin=True)


def per_environment(route: str, methods: str, *, test, prod, **extra) -> list[Rule]:
    return project(route, methods, test, kwargs={"environment": "test"}, **extra) + project(
        route, methods, prod, kwargs={"environment": "prod"}, **extra
    )


ENV = "projects/<str:name>/env/<str:environment>/"
API_ENV = "api/projects/<str:name>/environments/<str:environment>/"
TICKET = "projects/<str:name>/tickets/<int:pk>/"
API_TICKET = "api/projects/<str:name>/tickets/<int:pk>/"
RELEASE = "projects/<str:name>/releases/<int:pk>/"
API_RELEASE = "api/projects/<str:name>/releases/<int:pk>/"
CHANNELS = "projects/<str:name>/channels/"
CHANNEL = CHANNELS + "<int:pk>/"
# One Apollo namespace of the project; the world's settings do not let owners edit prod.
APOLLO = "projects/<str:name>/apollo/<str:environment>/<str:namespace>/"
API_APOLLO = "api/" + APOLLO


def _record(environment: str):
    return lambda world: world.records[environment].pk


POLICY: list[Rule] = [
    # --- the portal's pages -------------------------------------------------------------------------
    *signed_in("", "GET"),
    *signed_in("worker-ping/", "POST"),
    *public("language/", "POST"),
    *machine("metrics", "GET"),
    *public("login/", "GET POST"),
    *reachable("logout/", "POST"),
    *machine("api/monitoring/sd/<str:cluster>/", "GET"),
    *signed_in("projects/", "GET"),
    *ops_right("projects/new/", "GET POST"),
    *project("projects/<str:name>/", "GET"),
    *project("projects/<str:name>/settings/", "GET POST", OWNERS),
    *project("projects/<str:name>/cockpit/", "GET"),
    *project("projects/<str:name>/dora/", "GET"),
    *ops_only("dora/", "GET"),
    *per_environment(
        "projects/<str:name>/cockpit/<str:environment>/live/", "GET", test=MEMBERS, prod=MEMBERS
    ),
    *per_environment(
        "projects/<str:name>/cockpit/<str:environment>/traffic/", "GET", test=MEMBERS, prod=MEMBERS
    ),
    *project("projects/<str:name>/members/", "POST", OWNERS),
    *project("projects/<str:name>/members/<str:username>/remove/", "POST", OWNERS),
    *signed_in("audit/", "GET"),
    *ops_only("clusters/", "GET"),
    *ops_only("clusters/new/", "GET POST"),
    *ops_only("clusters/<int:pk>/", "GET POST"),
    *ops_only("clusters/<int:pk>/test-connection/", "POST"),
    *ops_only("clusters/prometheus-config/apply/", "POST"),
    *per_environment(ENV, "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(ENV + "restart/", "POST", test=FILERS, prod=OPS),
    *per_environment(ENV + "teardown/", "POST", test=OPS, prod=OPS),
    *per_environment(ENV + "scale/", "POST", test=FILERS, prod=OPS),
    *per_environment(ENV + "pods/<str:pod>/delete/", "POST", test=FILERS, prod=OPS),
    *per_environment(ENV + "pods/<str:pod>/logs/", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(ENV + "config/", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(ENV + "config/", "POST", test=OPS, prod=OPS),
    *per_environment(ENV + "eureka/", "GET", test=MEMBERS, prod=MEMBERS),
    # Read like pod logs: whoever sees the environment.
    *per_environment(ENV + "pipeline-logs/", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(
        ENV + "eureka/<str:instance>/status/", "POST", test=OPS, prod=OPS, data={"status": "OUT_OF_SERVICE"}
    ),
    *per_environment(ENV + "alert-rules/", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(ENV + "alert-rules/<str:rule>/", "POST", test=OWNERS, prod=OWNERS),
    *project(ENV + "config/changes/", "GET"),
    *project(ENV + "config/changes/<int:pk>/", "GET"),
    # Prod terminals: ops, and whoever holds an active grant (the world grants one to the developer).
    *per_environment(ENV + "terminal/", "GET", test=FILERS, prod=OPS | {"developer"}),
    *signed_in("terminal-sessions/", "GET"),
    # The world's session is the developer's, on test: its own user, the project's owners and ops read it.
    *project("terminal-sessions/<int:pk>/", "GET", SESSION_READERS),
    *ops_only("terminal-commands/", "GET"),
    *ops_only("terminal-refused-patterns/", "GET POST"),
    *ops_only("terminal-refused-patterns/<int:pk>/delete/", "POST"),
    *signed_in("tickets/", "GET"),
    *project("projects/<str:name>/tickets/new/", "GET POST", FILERS),
    *project(TICKET, "GET"),
    *project(TICKET + "edit/", "GET POST", FILERS),
    *project(TICKET + "preview/", "GET"),
    *project(TICKET + "<str:action>/", "POST", FILERS, kwargs={"action": "submit"}),
    *project(TICKET + "<str:action>/", "POST", FILERS, kwargs={"action": "withdraw"}),
    *project(TICKET + "<str:action>/", "POST", OPS, kwargs={"action": "approve"}),
    *project(TICKET + "<str:action>/", "POST", OPS, kwargs={"action": "reject"}),
    *signed_in("releases/", "GET"),
    *project("projects/<str:name>/releases/", "GET"),
    *project("projects/<str:name>/releases/", "POST", FILERS | {"tester"}),
    *project(RELEASE, "GET"),
    *project(RELEASE + "<str:action>/", "POST", CONFIRMERS, kwargs={"action": "confirm"}),
    *project(RELEASE + "<str:action>/", "POST", FILERS, kwargs={"action": "promote"}),
    *project(RELEASE + "<str:action>/", "POST", FILERS | {"tester"}, kwargs={"action": "cancel"}),
    *project(
        "projects/<str:name>/rollback/<str:environment>/",
        "POST",
        FILERS | {"tester"},
        kwargs={"environment": "test"},
        data={"record": _record("test")},
    ),
    *project(
        "projects/<str:name>/rollback/<str:environment>/",
        "POST",
        FILERS,
        kwargs={"environment": "prod"},
        data={"record": _record("prod")},
    ),
    *ops_only("terminal-grants/", "GET POST"),
    *ops_only("terminal-grants/<int:pk>/revoke/", "POST"),
    *project("projects/<str:name>/alert-policies/", "GET"),
    *project("projects/<str:name>/alert-policies/", "POST", OWNERS),
    *project("projects/<str:name>/alert-policies/<int:pk>/", "GET POST", OWNERS),
    *project("projects/<str:name>/alert-policies/<int:pk>/delete/", "POST", OWNERS),
    *signed_in("profile/notifications/", "GET POST"),
    *ops_only("recipes/", "GET"),
    *ops_only("recipes/<str:language>/", "GET POST"),
    *ops_only("log-pipelines/", "GET"),
    *ops_only("log-pipelines/<int:pk>/", "GET POST"),
    *ops_only("log-pipelines/<int:pk>/status/", "GET"),
    *ops_only("log-pipelines/<int:pk>/deploy/", "POST"),
    *ops_only("alerts/", "GET"),
    *project("projects/<str:name>/alerts/", "GET"),
    *project("projects/<str:name>/alerts/<int:pk>/acknowledge/", "POST", OWNERS),
    *project("projects/<str:name>/alerts/<int:pk>/silence/", "POST", OWNERS),
    *project("projects/<str:name>/alerts/silences/<uuid:silence_id>/expire/", "POST", OWNERS),
    *ops_only("channels/", "GET"),
    *ops_only("channels/new/", "GET POST"),
    *ops_only("channels/<int:pk>/", "GET"),
    *ops_only("channels/<int:pk>/edit/", "GET POST"),
    *ops_only("channels/<int:pk>/delete/", "POST"),
    *ops_only("channels/<int:pk>/test/", "POST"),
    *project(CHANNELS, "GET"),
    *project(CHANNELS + "new/", "GET POST", OWNERS),
    *project(CHANNEL, "GET"),
    *project(CHANNEL + "edit/", "GET POST", OWNERS),
    *project(CHANNEL + "delete/", "POST", OWNERS),
    *project(CHANNEL + "test/", "POST", OWNERS),
    *project("projects/<str:name>/apollo/", "GET"),
    *project("projects/<str:name>/apollo/settings/", "GET POST", OWNERS),
    *per_environment(APOLLO, "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(APOLLO + "items/new/", "POST", test=FILERS, prod=OPS),
    *per_environment(APOLLO + "items/edit/", "POST", test=FILERS, prod=OPS),
    *per_environment(APOLLO + "items/delete/", "POST", test=FILERS, prod=OPS),
    *per_environment(APOLLO + "release/", "POST", test=FILERS, prod=OPS),
    *per_environment(APOLLO + "rollback/", "POST", test=FILERS, prod=OPS),
    # --- the API -------------------------------------------------------------------------------------
    *signed_in("api/me/", "GET"),
    *signed_in("api/worker-ping/", "POST"),
    *public("api/token/", "POST"),
    *signed_in("api/projects/", "GET"),
    *ops_right("api/projects/", "POST"),
    *project("api/projects/<str:name>/", "GET"),
    *project("api/projects/<str:name>/cockpit/", "GET"),
    *project("api/projects/<str:name>/dora/", "GET"),
    *ops_only("api/dora/", "GET"),
    *project("api/projects/<str:name>/settings/", "GET", OWNERS),
    *project("api/projects/<str:name>/settings/", "PATCH", OWNERS),
    *project("api/projects/<str:name>/members/", "GET"),
    *project("api/projects/<str:name>/members/", "POST", OWNERS),
    *project("api/projects/<str:name>/members/<str:username>/", "DELETE", OWNERS),
    *signed_in("api/audit-events/", "GET"),
    *ops_only("api/channels/", "GET POST"),
    *ops_only("api/channels/<int:pk>/", "GET PATCH DELETE"),
    *ops_only("api/channels/<int:pk>/test/", "POST"),
    *ops_only("api/channels/<int:pk>/deliveries/", "GET"),
    *project("api/" + CHANNELS, "GET"),
    *project("api/" + CHANNELS, "POST", OWNERS),
    *project("api/" + CHANNEL, "GET"),
    *project("api/" + CHANNEL, "PATCH DELETE", OWNERS),
    *project("api/" + CHANNEL + "test/", "POST", OWNERS),
    *project("api/" + CHANNEL + "deliveries/", "GET"),
    *project("api/projects/<str:name>/apollo/settings/", "GET"),
    *project("api/projects/<str:name>/apollo/settings/", "PATCH", OWNERS),
    *per_environment(API_APOLLO, "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(API_APOLLO + "items/", "POST", test=FILERS, prod=OPS),
    *per_environment(API_APOLLO + "items/<path:key>", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(API_APOLLO + "items/<path:key>", "PUT DELETE", test=FILERS, prod=OPS),
    *per_environment(API_APOLLO + "releases/", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(API_APOLLO + "releases/", "POST", test=FILERS, prod=OPS),
    *per_environment(API_APOLLO + "rollback/", "POST", test=FILERS, prod=OPS),
    *ops_only("api/clusters/", "GET POST"),
    *ops_only("api/clusters/<int:pk>/", "GET PUT PATCH"),
    *ops_only("api/clusters/<int:pk>/test-connection/", "POST"),
    *ops_only("api/clusters/prometheus-config/", "GET"),
    *ops_only("api/clusters/prometheus-config/apply/", "POST"),
    *per_environment(API_ENV, "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(API_ENV, "DELETE", test=OPS, prod=OPS),
    *per_environment(API_ENV + "restart/", "POST", test=FILERS, prod=OPS),
    *per_environment(API_ENV + "scale/", "POST", test=FILERS, prod=OPS, data={"replicas": 2}),
    *per_environment(API_ENV + "pods/<str:pod>/", "DELETE", test=FILERS, prod=OPS),
    *per_environment(API_ENV + "pods/<str:pod>/logs/", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(API_ENV + "config/", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(API_ENV + "metrics/", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(API_ENV + "eureka/", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(API_ENV + "pipeline-logs/", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(
        API_ENV + "eureka/instances/<str:instance>/status/",
        "POST",
        test=OPS,
        prod=OPS,
        data={"status": "OUT_OF_SERVICE"},
    ),
    *per_environment(API_ENV + "alert-rules/", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(API_ENV + "alert-rules/<str:rule>/", "GET", test=MEMBERS, prod=MEMBERS),
    *per_environment(
        API_ENV + "alert-rules/<str:rule>/", "PATCH", test=OWNERS, prod=OWNERS, data={"threshold": 0.1}
    ),
    *per_environment(API_ENV + "config/", "PUT", test=OPS, prod=OPS),
    *project(API_ENV + "config/changes/", "GET"),
    *project(API_ENV + "config/changes/<int:pk>/", "GET"),
    *signed_in("api/terminal-sessions/", "GET"),
    *project("api/terminal-sessions/<int:pk>/", "GET", SESSION_READERS),
    *project("api/terminal-sessions/<int:pk>/recording", "GET", SESSION_READERS),
    *project("api/terminal-sessions/<int:pk>/commands", "GET", SESSION_READERS),
    *ops_only("api/terminal-commands/", "GET"),
    *ops_only("api/terminal-refused-patterns/", "GET POST"),
    *ops_only("api/terminal-refused-patterns/<int:pk>/", "GET DELETE"),
    *signed_in("api/tickets/", "GET"),
    *project("api/projects/<str:name>/tickets/", "GET"),
    *project("api/projects/<str:name>/tickets/", "POST", FILERS),
    *project(API_TICKET, "GET"),
    *project(API_TICKET, "PATCH", FILERS),
    *project(API_TICKET + "submit/", "POST", FILERS),
    *project(API_TICKET + "withdraw/", "POST", FILERS),
    *project(API_TICKET + "approve/", "POST", OPS),
    *project(API_TICKET + "reject/", "POST", OPS),
    *project(API_TICKET + "preview/", "GET"),
    *signed_in("api/releases/", "GET"),
    *project("api/projects/<str:name>/releases/", "GET"),
    *project("api/projects/<str:name>/releases/", "POST", FILERS | {"tester"}),
    *project(API_RELEASE, "GET"),
    *project(API_RELEASE + "console/", "GET"),
    *project(API_RELEASE + "confirm/", "POST", CONFIRMERS),
    *project(API_RELEASE + "promote/", "POST", FILERS),
    *project(API_RELEASE + "cancel/", "POST", FILERS | {"tester"}),
    *project("api/projects/<str:name>/deployments/", "GET"),
    *project(
        "api/projects/<str:name>/rollback/",
        "POST",
        FILERS | {"tester"},
        data={"environment": "test", "record": _record("test")},
    ),
    *project(
        "api/projects/<str:name>/rollback/",
        "POST",
        FILERS,
        data={"environment": "prod", "record": _record("prod")},
    ),
    *ops_only("api/recipes/<str:language>/", "GET POST"),
    *ops_only("api/log-pipelines/", "GET"),
    *ops_only("api/log-pipelines/<int:pk>/", "GET PUT"),
    *ops_only("api/log-pipelines/<int:pk>/deploy/", "POST"),
    *ops_only("api/log-pipelines/<int:pk>/status/", "GET"),
    *ops_only("api/log-pipelines/<int:pk>/rollouts/<int:rollout>/", "GET"),
    # Alertmanager's webhook receiver: its bearer token or basic auth, never a session.
    *machine("api/alerts/alertmanager", "POST"),
    *ops_only("api/alerts/", "GET"),
    *project("api/projects/<str:name>/alerts/", "GET"),
    *project("api/projects/<str:name>/alerts/<int:pk>/", "GET"),
    *project("api/projects/<str:name>/alerts/<int:pk>/acknowledge/", "POST", OWNERS),
    *project("api/projects/<str:name>/alerts/<int:pk>/silence/", "POST", OWNERS),
    *project("api/projects/<str:name>/silences/", "GET"),
    *project("api/projects/<str:name>/silences/<uuid:silence_id>/", "DELETE", OWNERS),
    *ops_only("api/terminal-grants/", "GET POST"),
    *ops_only("api/terminal-grants/<int:pk>/revoke/", "POST"),
    *project("api/projects/<str:name>/alert-policies/", "GET"),
    *project("api/projects/<str:name>/alert-policies/", "POST", OWNERS),
    *project("api/projects/<str:name>/alert-policies/<int:pk>/", "GET"),
    *project("api/projects/<str:name>/alert-policies/<int:pk>/", "PATCH DELETE", OWNERS),
    *signed_in("api/me/notifications/", "GET PATCH"),
    *signed_in("api/schema/", "GET"),
    *signed_in("api/docs/", "GET"),
    # --- Django's admin: superusers only; what it may change there is tested with the admin itself -----
    *admin_site("admin/*", "GET POST"),
    *_rows("admin/login/", "GET POST", EVERYONE, (), admin=True),
    *reachable("admin/logout/", "POST", admin=True),
]
