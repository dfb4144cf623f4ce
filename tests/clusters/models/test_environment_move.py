"""ProjectEnvironment moved from deploys to clusters by state only (clusters/0005, deploys/0005).

A database filled by the old schema must migrate forward with its rows, encrypted values, foreign keys
and content type intact, and without a new table: the migrations copy nothing.
"""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from clusters.models import ConfigChange, ProjectEnvironment
from clusters.workload import secret_env

pytestmark = pytest.mark.django_db(transaction=True)

# The last nodes at which deploys still owned ProjectEnvironment.
BEFORE_THE_MOVE = [("clusters", "0004_configchange"), ("deploys", "0004_secret_env")]
# The move itself; later migrations may add tables of their own.
THE_MOVE = [("clusters", "0005_projectenvironment"), ("deploys", "0006_projectenvironment_moved_to_clusters")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


@pytest.fixture(autouse=True)
def back_to_the_latest_schema():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    yield
    # Even when an assertion failed half-way, the tests after this one need the current schema.
    _migrate(latest)


def test_an_old_database_migrates_forward_with_its_environments():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE_THE_MOVE)
    assert "projectenvironment" in old.all_models["deploys"]
    assert "projectenvironment" not in old.all_models["clusters"]

    user = old.get_model("auth", "User").objects.create(username="mover")
    project = old.get_model("projects", "Project").objects.create(name="orders", language="java", owner=user)
    cluster = old.get_model("clusters", "Cluster").objects.create(
        name="test-1",
        environment="test",
        api_url="https://10.0.0.1:6443",
        auth_type="token",
        credential="tok",
    )
    environment = old.get_model("deploys", "ProjectEnvironment").objects.create(
        project=project,
        environment="test",
        cluster=cluster,
        namespace="orders-test",
        spec={"replicas": 2, "secret_env_names": ["API_KEY"]},
        secret_env=secret_env.dump({"API_KEY": "s3cret"}),
        live_objects=[{"kind": "Deployment", "name": "orders"}],
    )
    change = old.get_model("clusters", "ConfigChange").objects.create(
        environment=environment, actor=user, request={"replicas": 3}
    )
    content_type, _ = old.get_model("contenttypes", "ContentType").objects.get_or_create(
        app_label="deploys", model="projectenvironment"
    )
    tables_before = set(connection.introspection.table_names())

    _migrate(THE_MOVE)
    # No table was created or dropped: the rows were not copied.
    assert set(connection.introspection.table_names()) == tables_before
    _migrate(latest)

    moved = ProjectEnvironment.objects.get(pk=environment.pk)
    assert (moved.project_id, moved.cluster_id) == (project.pk, cluster.pk)
    assert (moved.environment, moved.namespace) == ("test", "orders-test")
    assert moved.spec == {"replicas": 2, "secret_env_names": ["API_KEY"]}
    assert secret_env.load(moved.secret_env) == {"API_KEY": "s3cret"}
    assert moved.live_objects == [{"kind": "Deployment", "name": "orders"}]
    assert ConfigChange.objects.get(pk=change.pk).environment == moved
    assert list(moved.config_changes.values_list("pk", flat=True)) == [change.pk]
    assert list(moved.project.environments.all()) == [moved]
    assert list(moved.cluster.environments.all()) == [moved]
    assert tables_before <= set(connection.introspection.table_names())
    assert ProjectEnvironment._meta.db_table == "deploys_projectenvironment"
    from django.contrib.contenttypes.models import ContentType

    assert ContentType.objects.get_for_model(ProjectEnvironment).pk == content_type.pk


def test_the_move_is_reversible():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE_THE_MOVE)
    assert old.get_model("deploys", "ProjectEnvironment")._meta.db_table == "deploys_projectenvironment"
    new = _migrate(latest)
    assert new.get_model("clusters", "ProjectEnvironment")._meta.db_table == "deploys_projectenvironment"
    assert "projectenvironment" not in new.all_models["deploys"]
