"""Planted secrets never come back: not in API answers, rendered pages, live events, logs or any text
column of the database (encrypted columns hold ciphertext, never the clear value).

The secrets are planted through the real paths (the API and the login form), then every page and
every API GET is read as ops, a superuser, the owner and a developer, the admin's pages included.
"""

import asyncio
import json
import logging

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection

from observability import events
from observability.models import LiveEvent
from tests.security.policy import Rule
from tests.security.routes import example_kwargs, example_path, url_patterns

pytestmark = pytest.mark.django_db

SECRET_ENV_VALUE = "planted-secret-env-value-4be1d07f"
CLUSTER_TOKEN = "planted-cluster-token-9d3c55aa17"
GITLAB_TOKEN = "planted-gitlab-token-0e6f2c"
JENKINS_TOKEN = "planted-jenkins-token-71ab90"
WEBHOOK_TOKEN = "planted-alertmanager-webhook-token-3f9a"
REGISTRY_PASSWORD = "planted-registry-password-5c2e"
USER_PASSWORD = "planted-User-passw0rd-e83a1c"
WRONG_PASSWORD = "planted-Wrong-passw0rd-21f7d9"
DINGTALK_TOKEN = "planted-dingtalk-token-5e0b3c"
DINGTALK_SECRET = "SECplanted-dingtalk-secret-a41f"
WECOM_KEY = "planted-wecom-key-93d1e7"
APOLLO_TOKEN = "planted-apollo-token-e71f0c"
LOG_PROXY_PASSWORD = "planted-log-proxy-password-41c7"  # noqa: S105
READERS = ("ops", "superuser", "owner", "developer")


class Sweep:
    def __init__(self, secrets: dict[str, str]):
        self.secrets = secrets
        self.found: list[str] = []
        self.places = 0

    def search(self, where: str, text: str) -> None:
        self.places += 1
        for label, secret in self.secrets.items():
            if secret in text:
                self.found.append(f"{label} in {where}")


def _push_callbacks(callbacks):
    """The on-commit callbacks that push live events (not the ones that queue Celery tasks)."""
    return [c for c in callbacks if c.__code__.co_filename == events.__file__]


async def _receive(layer, channel, timeout: float = 10):
    return await asyncio.wait_for(layer.receive(channel), timeout)


def _database_text() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " AND data_type IN ('character varying', 'text', 'json', 'jsonb', 'bytea')"
        )
        columns = cursor.fetchall()
        rows = []
        for table, column in columns:
            quoted_table, quoted_column = connection.ops.quote_name(table), connection.ops.quote_name(column)
            # bytea as its bytes decoded: a clear value stored in binary must show too.
            expression = (
                f"convert_from({quoted_column}, 'LATIN1')"
                if _is_bytea(cursor, table, column)
                else f"{quoted_column}::text"
            )
            cursor.execute(f"SELECT {expression} FROM {quoted_table} WHERE {quoted_column} IS NOT NULL")  # noqa: S608
            rows += [(f"{table}.{column}", value) for (value,) in cursor.fetchall()]
    return rows


def _is_bytea(cursor, table, column) -> bool:
    cursor.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_name = %s AND column_name = %s",
        [table, column],
    )
    return cursor.fetchone()[0] == "bytea"


def test_planted_secrets_never_show(client, world, settings, caplog, django_capture_on_commit_callbacks):
    settings.GITLAB_TOKEN = GITLAB_TOKEN
    settings.JENKINS_TOKEN = JENKINS_TOKEN
    settings.REGISTRY_PASSWORD = REGISTRY_PASSWORD
    settings.ALERTMANAGER_WEBHOOK_TOKEN = WEBHOOK_TOKEN
    caplog.set_level(logging.DEBUG)
    people = world.people
    api_token = None
    answers: list[tuple[str, str]] = []

    with django_capture_on_commit_callbacks() as callbacks:
        # A user's password: set in the admin's user form (audited), then used at the login form after
        # a failed attempt (which django-axes records).
        client.force_login(world.superuser)
        added = client.post(
            "/admin/auth/user/add/",
            {"username": "pat-planted", "password1": USER_PASSWORD, "password2": USER_PASSWORD},
        )
        assert added.status_code == 302, added.content.decode()[:500]
        client.logout()
        for password in (WRONG_PASSWORD, USER_PASSWORD):
            response = client.post("/login/", {"username": "pat-planted", "password": password})
            answers.append(("POST /login/", response.content.decode(errors="replace")))
        client.logout()

        # An API token: its own answer carries it, nothing else may.
        response = client.post("/api/token/", {"username": "pat-planted", "password": USER_PASSWORD})
        assert response.status_code == 200
        api_token = response.json()["token"]

        client.force_login(people.ops)
        created = client.post(
            "/api/clusters/",
            {
                "name": "planted-cluster",
                "environment": "test",
                "api_url": "https://127.0.0.1:9",
                "auth_type": "token",
                "credential": CLUSTER_TOKEN,
                "verify_tls": False,
            },
            content_type="application/json",
        )
        assert created.status_code == 201, created.content
        answers.append(("POST /api/clusters/", created.content.decode()))
        # The cluster page form posted back with an error must not echo the credential either.
        page = client.post(
            f"/clusters/{created.json()['id']}/",
            {"name": "", "environment": "test", "auth_type": "token", "credential": CLUSTER_TOKEN},
        )
        answers.append(("POST /clusters/<id>/ (invalid)", page.content.decode()))

        # Alertmanager's receiver token: presented with a notification, and a wrong one next to it.
        from tests.alerting.payloads import notification

        for token, expected in ((WEBHOOK_TOKEN, 200), (WEBHOOK_TOKEN[::-1], 403)):
            received = client.post(
                "/api/alerts/alertmanager",
                notification(project="orders"),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {token}",
            )
            assert received.status_code == expected, received.content
            answers.append(("POST /api/alerts/alertmanager", received.content.decode()))

        client.force_login(people.developer)
        from tests.fixtures.clusters import VALID_REQUEST

        filed = client.post(
            "/api/projects/orders/tickets/",
            {
                "environment": "prod",
                "request": VALID_REQUEST,
                "secret_env_vars": {"DB_PASSWORD": SECRET_ENV_VALUE},
                "submit": True,
            },
            content_type="application/json",
        )
        assert filed.status_code == 201, filed.content
        answers.append(("POST /api/projects/orders/tickets/", filed.content.decode()))
        client.force_login(people.ops)
        config = client.put(
            "/api/projects/orders/environments/test/config/",
            {"request": VALID_REQUEST, "secret_env_vars": {"API_KEY": SECRET_ENV_VALUE}},
            content_type="application/json",
        )
        answers.append(("PUT config", config.content.decode()))

        # Alert channels: a DingTalk robot through the API (owner), a WeCom robot through the page (ops),
        # an edit whose form comes back with errors, and a test message.
        client.force_login(people.owner)
        robot = client.post(
            "/api/projects/orders/channels/",
            {
                "name": "planted-robot",
                "kind": "dingtalk",
                "access_token": DINGTALK_TOKEN,
                "signing_secret": DINGTALK_SECRET,
            },
            content_type="application/json",
        )
        assert robot.status_code == 201, robot.content
        answers.append(("POST /api/projects/orders/channels/", robot.content.decode()))
        robot_page = f"/projects/orders/channels/{robot.json()['id']}/"
        edited = client.post(
            robot_page + "edit/",
            {
                "name": "",
                "kind": "dingtalk",
                "access_token": DINGTALK_TOKEN,
                "signing_secret": DINGTALK_SECRET,
            },
        )
        assert edited.status_code == 400
        answers.append(("POST channel edit (invalid)", edited.content.decode()))
        tested = client.post(f"/api/projects/orders/channels/{robot.json()['id']}/test/")
        assert tested.status_code == 202, tested.content
        answers.append(("POST channel test", tested.content.decode()))
        client.force_login(people.ops)
        added = client.post(
            "/channels/new/", {"name": "planted-wecom", "kind": "wecom", "key": WECOM_KEY, "enabled": "on"}
        )
        assert added.status_code == 302, added.content.decode()[:500]

        # The project's Apollo Open API token: through the API (owner), then a settings form that comes
        # back with an error (ops).
        client.force_login(people.owner)
        apollo = client.patch(
            "/api/projects/orders/apollo/settings/", {"token": APOLLO_TOKEN}, content_type="application/json"
        )
        assert apollo.status_code == 200, apollo.content
        answers.append(("PATCH apollo settings", apollo.content.decode()))
        client.force_login(people.ops)
        apollo_page = client.post(
            "/projects/orders/apollo/settings/",
            {
                "app_id": "not valid!",
                "namespaces": "application",
                "test_env": "FAT",
                "prod_env": "PRO",
                "token": APOLLO_TOKEN,
            },
        )
        assert apollo_page.status_code == 400
        answers.append(("POST apollo settings (invalid)", apollo_page.content.decode()))

        # A log pipeline's proxy password: through the API, then a page form that comes back with an error.
        cluster_id = world.clusters["prod"].pk
        pipeline = client.put(
            f"/api/log-pipelines/{cluster_id}/",
            {"kafka_bootstrap_servers": "kafka:9092", "password": LOG_PROXY_PASSWORD},
            content_type="application/json",
        )
        assert pipeline.status_code == 200, pipeline.content
        answers.append(("PUT log pipeline", pipeline.content.decode()))
        pipeline_page = client.post(
            f"/log-pipelines/{cluster_id}/",
            {"kafka_bootstrap_servers": "no-port", "password": LOG_PROXY_PASSWORD, "namespace": "logging"},
        )
        assert pipeline_page.status_code == 400
        answers.append(("POST log pipeline (invalid)", pipeline_page.content.decode()))

    sweep = Sweep(
        {
            "secret env value": SECRET_ENV_VALUE,
            "cluster token": CLUSTER_TOKEN,
            "world cluster token": world.clusters["test"].credential,
            "GitLab token": GITLAB_TOKEN,
            "Jenkins token": JENKINS_TOKEN,
            "Alertmanager webhook token": WEBHOOK_TOKEN,
            "wrong webhook token": WEBHOOK_TOKEN[::-1],
            "registry password": REGISTRY_PASSWORD,
            "user password": USER_PASSWORD,
            "wrong password": WRONG_PASSWORD,
            "API token": api_token,
            "DingTalk access token": DINGTALK_TOKEN,
            "DingTalk signing secret": DINGTALK_SECRET,
            "WeCom key": WECOM_KEY,
            "world channel key": "world-wecom-key",
            "Apollo token": APOLLO_TOKEN,
            "world Apollo token": world.apollo.token,
            "log proxy password": LOG_PROXY_PASSWORD,
            "world log proxy password": str(world.log_pipeline.password),
        }
    )
    assert world.clusters["test"].credential  # planted when the world was built

    # Every page and every API GET, as each reader.
    for role in READERS:
        client.force_login(world.user(role))
        for route, _ in url_patterns():
            path = example_path(route, example_kwargs(route, Rule(route, "GET", frozenset()), world))
            response = client.get(path)
            body = b"".join(response.streaming_content) if response.streaming else response.content
            answers.append((f"GET {path} as {role}", body.decode(errors="replace")))
        for admin_page in (
            "/admin/clusters/cluster/",
            f"/admin/clusters/cluster/{world.clusters['test'].pk}/change/",
            "/admin/authtoken/tokenproxy/",
            "/admin/observability/auditevent/",
            "/admin/axes/accessattempt/",
            "/admin/axes/accesslog/",
            "/admin/axes/accessfailurelog/",
        ):
            answers.append((f"GET {admin_page} as {role}", client.get(admin_page).content.decode()))
    for where, text in answers:
        sweep.search(where, text)

    # Live events, as the channel layer delivers them: subscribe to every stream written, then push.
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    for stream in set(LiveEvent.objects.values_list("stream", flat=True)):
        async_to_sync(layer.group_add)(events.group_name(stream), channel)
    pushes = _push_callbacks(callbacks)
    for push in pushes:
        push()
    for _ in pushes:
        message = async_to_sync(_receive)(layer, channel)
        sweep.search("a live event", json.dumps(message))
    assert pushes

    for record in caplog.records:
        sweep.search(f"log {record.name}", record.getMessage() + str(record.args) + str(record.exc_text))

    rows = _database_text()
    for where, value in rows:
        sweep.search(f"database {where}", value)

    counts = f"{len(answers)} answers, {len(pushes)} live events, {len(caplog.records)} log records"
    print(f"secrets sweep: {counts}, {len(rows)} database values")
    assert len(answers) > 300 and len(rows) > 100
    assert not sweep.found, "Planted secrets found:\n" + "\n".join(sorted(set(sweep.found)))
