"""deploys 0005 (the run columns) migrates a database holding releases and tickets of the old schema."""

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("deploys", "0004_secret_env")]
AFTER = [("deploys", "0005_run_fields")]


def test_existing_rows_get_the_new_run_columns(people):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Release = old.get_model("deploys", "Release")
    Ticket = old.get_model("deploys", "OnboardingTicket")
    release = Release.objects.create(
        project_id=people.project.pk,
        environment="test",
        created_by_id=people.developer.pk,
        version="v-old",
        status="building",
        jenkins_build=4,
        console="old console\n",
        console_offset=12,
    )
    ticket = Ticket.objects.create(
        project_id=people.project.pk,
        environment="test",
        created_by_id=people.developer.pk,
        status="provisioning",
        run_token=uuid.uuid4(),
        progress=[{"at": "2026-01-01T00:00:00", "message": "old line"}],
    )

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    migrated = new.get_model("deploys", "Release").objects.get(pk=release.pk)
    assert (migrated.build_polls, migrated.build_started_at, migrated.progress, migrated.started_at) == (
        0,
        None,
        [],
        None,
    )
    assert (migrated.console, migrated.console_offset, migrated.jenkins_build) == ("old console\n", 12, 4)
    kept = new.get_model("deploys", "OnboardingTicket").objects.get(pk=ticket.pk)
    assert kept.progress == [{"at": "2026-01-01T00:00:00", "message": "old line"}]
    assert kept.run_token == ticket.run_token

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # back to the head for the rest of the suite
