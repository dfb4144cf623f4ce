"""projects 0004 drops the owner-granted prod_terminal flags (fail closed) and records each one."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from observability.models import AuditEvent
from projects.access import Action, can

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("projects", "0003_project_auto_rollback_and_more")]
AFTER = [("projects", "0004_prod_terminal_grants")]


def test_old_prod_terminal_flags_are_dropped_and_audited(people):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    old.get_model("projects", "ProjectMember").objects.filter(
        project_id=people.project.pk, user_id=people.developer.pk
    ).update(prod_terminal=True)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    assert not new.get_model("projects", "ProdTerminalGrant").objects.exists()
    event = AuditEvent.objects.get(verb="prod_terminal.revoked")
    assert event.actor is None and event.project_id == people.project.pk
    assert event.changes["user"] == people.developer.username

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # back to the head for the rest of the suite
    assert not can(people.developer, Action.TERMINAL_PROD, people.project)
