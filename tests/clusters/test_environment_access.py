"""One access function for a project environment and one rule: 404 for whoever may not see it, 403 for a
member lacking the right, whatever the door (page, API, live socket, terminal); one pod predicate."""

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from clusters.models import ProjectEnvironment
from clusters.selectors.environments import EnvironmentRef, environment_get, is_own_pod
from clusters.services import terminal
from projects.access import Action

pytestmark = [pytest.mark.django_db, pytest.mark.kube]


@pytest.fixture
def env(people, local_clusters):
    """A test environment row on the local cluster (nothing applied: access is decided before any call)."""
    return ProjectEnvironment.objects.create(
        project=people.project,
        environment="test",
        cluster=local_clusters["test"],
        namespace="orders-test-access",
    )


ENV_DOORS = (
    ("get", "/projects/orders/env/test/"),
    ("get", "/projects/orders/env/test/config/"),
    ("post", "/projects/orders/env/test/config/"),
    ("post", "/projects/orders/env/test/restart/"),
    ("post", "/projects/orders/env/test/scale/"),
    ("get", "/projects/orders/env/test/terminal/"),
    ("get", "/api/projects/orders/environments/test/"),
    ("get", "/api/projects/orders/environments/test/config/"),
    ("post", "/api/projects/orders/environments/test/restart/"),
)


def test_a_non_member_gets_404_at_every_door_of_an_environment(client, people, env):
    client.force_login(people.outsider)
    for method, url in ENV_DOORS:
        assert getattr(client, method)(url).status_code == 404, (method, url)
    with pytest.raises(Http404):
        terminal.terminal_target(people.outsider, project_name="orders", environment="test", pod="any")
    with pytest.raises(Http404):
        environment_get(user=people.outsider, name="orders", environment="test")


def test_a_member_lacking_the_right_gets_403_before_learning_whether_it_runs_there(client, people, env):
    client.force_login(people.viewer)
    for method, url in ENV_DOORS[2:6]:
        assert getattr(client, method)(url).status_code == 403, (method, url)
    assert client.post("/api/projects/orders/environments/test/restart/").status_code == 403
    # Production is not provisioned: the missing right is said first; a mere look says "not there".
    client.force_login(people.developer)
    assert client.post("/projects/orders/env/prod/restart/").status_code == 403
    assert client.get("/projects/orders/env/prod/terminal/").status_code == 403
    assert client.get("/projects/orders/env/prod/").status_code == 404
    with pytest.raises(terminal.TerminalRefused) as refused:
        terminal.terminal_target(people.viewer, project_name="orders", environment="test", pod="any")
    assert refused.value.code == 4403


def test_the_access_function_returns_what_the_user_may_do(people, env):
    viewer = environment_get(user=people.viewer, name="orders", environment="test")
    assert viewer.actions == {Action.VIEW}
    developer = environment_get(
        user=people.developer, name="orders", environment="test", action=Action.OPERATE_TEST
    )
    assert {Action.OPERATE_TEST, Action.TERMINAL_TEST} <= developer.actions
    assert Action.EDIT_CONFIG not in developer.actions
    assert developer == viewer  # the same environment, whoever asked
    with pytest.raises(PermissionDenied):
        environment_get(user=people.viewer, name="orders", environment="test", action=Action.OPERATE_TEST)


def test_a_pod_belongs_to_the_environment_only_with_both_labels(people, env):
    ref = EnvironmentRef(project=people.project, environment=env)

    def pod(**labels):
        return {"metadata": {"name": "p", "labels": labels}}

    name = "app.kubernetes.io/name"
    instance = "app.kubernetes.io/instance"
    assert is_own_pod(ref, pod(**{name: "orders", instance: "orders-test"}))
    assert not is_own_pod(ref, pod(**{name: "orders", instance: "orders-prod"}))  # same namespace, prod
    assert not is_own_pod(ref, pod(**{name: "orders"}))
    assert not is_own_pod(ref, pod(**{name: "payments", instance: "orders-test"}))
    assert not is_own_pod(ref, None)
