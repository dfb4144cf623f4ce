"""Schemathesis over the whole OpenAPI document, against the real app (Django's WSGI handler in this
process, on the test's database) as a real ops user and a developer.

Checks: no server error (a 502 is expected only where the schema documents it: the world's cluster is
unreachable), the status code and content type are documented, and the body conforms to the schema.
Bounded: a fixed number of examples per operation and mode, a fixed seed, no Hypothesis database.

Destructive operations only meet objects this test created: everything runs inside the test's
transaction (rolled back at the end, so no Celery task is ever queued) and the only cluster is the
unreachable one, so nothing outside the test database can change.
"""

import time
from dataclasses import dataclass, field

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from opsportal.tokens import token_issue
from tests.security.world import World

pytestmark = pytest.mark.django_db

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Examples per operation: (mode, path parameters from the world or generated, examples).
BUDGET = [
    (GenerationMode.POSITIVE, True, 12),
    (GenerationMode.POSITIVE, False, 3),
    (GenerationMode.NEGATIVE, True, 6),
]
DEVELOPER_BUDGET = [(GenerationMode.POSITIVE, True, 4)]
SEED = 20261130


@dataclass
class Tally:
    requests: int = 0
    label: str = ""  # the user, operation and mode being exercised
    failures: list[str] = field(default_factory=list)


def _config() -> SchemathesisConfig:
    # 502 is the portal's documented answer when the cluster cannot be reached; status_code_conformance
    # still fails it on an operation that does not document it.
    return SchemathesisConfig.from_dict(
        {"checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "502"]}}}
    )


def _path_parameters(world: World, path: str) -> dict:
    values = {**world.example_values(), "id": world.pk_in(path, "{id}")}
    return {key: value for key, value in values.items() if "{" + key + "}" in path}


def _exercise(schema, world: World, user, budget, tally: Tally) -> None:
    headers = {"Authorization": f"Token {token_issue(user=user)}"}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, real_objects, examples in budget:
            path_parameters = _path_parameters(world, operation.path) if real_objects else None
            if real_objects and not path_parameters and "{" in operation.path:
                continue
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters or None)
            tally.label = f"{user.username} {operation.label} [{mode.value}]"

            @seed(SEED)
            @settings(
                max_examples=examples,
                database=None,
                deadline=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case):
                # A savepoint per request: a failed statement must not abort the test's transaction,
                # and one example's deletions do not leak into the next.
                with transaction.atomic():
                    response = case.call(headers=headers)
                    transaction.set_rollback(True)
                tally.requests += 1
                try:
                    case.validate_response(response, checks=CHECKS, headers=headers)
                except (Exception, BaseExceptionGroup) as exc:  # every failure is collected and reported
                    for failure in getattr(exc, "exceptions", [exc]):
                        title = getattr(failure, "title", type(failure).__name__)
                        message = " ".join(str(getattr(failure, "message", failure)).split())[:300]
                        tally.failures.append(
                            f"{tally.label} -> {response.status_code} "
                            f"{title}: {message}\n    {case.as_curl_command()[:300]}"
                        )

            try:
                run()
            except Unsatisfiable:
                # Nothing to negate (an operation without input) is not a defect; nothing to send is.
                if mode is not GenerationMode.NEGATIVE:
                    tally.failures.append(f"{tally.label}: no example")


@pytest.fixture
def wsgi_app():
    """Django's WSGI handler on the test's connection. Like Django's test client, keep the handler from
    closing the connection at the end of each request: that would end the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_every_operation_answers_as_documented(world, wsgi_app):
    started = time.monotonic()
    app = wsgi_app
    ops_headers = {"Authorization": f"Token {token_issue(user=world.people.ops)}"}
    schema = schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", app, config=_config(), headers=ops_headers
    )
    tally = Tally()
    _exercise(schema, world, world.people.ops, BUDGET, tally)
    _exercise(schema, world, world.people.developer, DEVELOPER_BUDGET, tally)
    elapsed = time.monotonic() - started
    print(f"schemathesis: {tally.requests} requests over {len(schema)} operations in {elapsed:.1f} s")
    # Deduplicated by operation and first line: one defect tends to fail many examples.
    unique = sorted({failure.split("\n")[0]: failure for failure in tally.failures}.values())
    assert tally.requests > 0
    assert not unique, f"{len(unique)} distinct failures:\n" + "\n".join(unique)
