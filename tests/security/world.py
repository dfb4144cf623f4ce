"""One of every object a URL can name, owned by the named people, for the suites that walk every URL
(authorization matrix, schemathesis, secrets sweep). Rows are made directly: the suites test who may
reach what, not how the objects came to be. The clusters point at a closed port, so a view that talks
to Kubernetes meets an unreachable apiserver (the one 502 shape) and no suite needs the control plane."""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from alerting.models import Alert, Channel, Policy
from clusters.models import (
    Cluster,
    ConfigChange,
    LogPipeline,
    ProjectEnvironment,
    RefusedCommandPattern,
    TerminalSession,
)
from configs.models import ApolloSettings
from deploys.models import BuildRecipe, DeploymentRecord, LogProxyRollout, OnboardingTicket, Release
from projects.models import ProdTerminalGrant
from tests.fixtures.clusters import VALID_REQUEST
from tests.fixtures.people import PASSWORD, People

# Nothing listens on the discard port: connections are refused at once.
UNREACHABLE_API = "https://127.0.0.1:9"
CLUSTER_TOKEN = "planted-cluster-token-7c41e0a9b2"
# The world's Apollo settings: no APOLLO_PORTAL_URL in the tests' settings, so nothing is ever called.
APOLLO_TOKEN = "planted-apollo-token-5b0c9e21d4"
LOG_PROXY_PASSWORD = "planted-log-proxy-password-8e2d51"  # noqa: S105


@dataclass
class World:
    people: People
    superuser: User
    clusters: dict[str, Cluster]
    environments: dict[str, ProjectEnvironment]
    ticket: OnboardingTicket
    release: Release
    config_change: ConfigChange
    terminal_session: TerminalSession
    recipe: BuildRecipe
    terminal_grant: ProdTerminalGrant
    refused_pattern: RefusedCommandPattern
    # A successful deployment per environment, to roll back to.
    records: dict[str, DeploymentRecord]
    alert: Alert
    # Alert channels: the project's ("project") and a portal-wide one ("ops").
    channels: dict[str, Channel] = field(default_factory=dict)
    alert_policy: Policy | None = None
    apollo: ApolloSettings | None = None
    # The test cluster's log pipeline and a rollout of its proxy.
    log_pipeline: LogPipeline | None = None
    log_proxy_rollout: LogProxyRollout | None = None

    def example_values(self) -> dict:
        """What a URL's named arguments are, for objects of this world."""
        return {
            "name": self.people.project.name,
            "environment": "test",
            "pod": "orders-0",
            "username": self.people.viewer.username,
            "language": "java",
            # A silence Alertmanager does not have (the world has no Alertmanager: the API answers 502).
            "silence_id": "6f1c6a51-5d0e-4b8b-9a3b-7c1f3e1d2a4b",
            "rule": "ErrorRatioHigh",
            "namespace": "application",
            "key": "timeout",
            "instance": "10.0.1.7:orders:8080",  # a Eureka instance id
            "rollout": self.log_proxy_rollout.pk if self.log_proxy_rollout else 0,
        }

    def pk_in(self, path: str, placeholder: str) -> int | None:
        """The id of the object a path names with its placeholder (``<int:pk>`` in Django's routes,
        ``{id}`` in the OpenAPI document)."""
        if f"channels/{placeholder}" in path:
            return self.channels["project" if "projects/" in path else "ops"].pk
        for collection, obj in [
            ("tickets", self.ticket),
            ("releases", self.release),
            ("changes", self.config_change),
            ("terminal-sessions", self.terminal_session),
            ("clusters", self.clusters["test"]),
            ("log-pipelines", self.clusters["test"]),
            ("terminal-grants", self.terminal_grant),
            ("terminal-refused-patterns", self.refused_pattern),
            ("alerts", self.alert),
            ("alert-policies", self.alert_policy),
        ]:
            if f"{collection}/{placeholder}" in path:
                return obj.pk
        return None

    def user(self, role: str) -> User | None:
        if role == "anonymous":
            return None
        if role == "superuser":
            return self.superuser
        return getattr(self.people, role)


def build_world(people: People, recordings_dir, *, cluster_token: str = CLUSTER_TOKEN) -> World:
    superuser = User.objects.create_superuser("sue-super", password=PASSWORD)
    clusters = {
        env: Cluster.objects.create(
            name=f"unreachable-{env}",
            environment=env,
            api_url=UNREACHABLE_API,
            auth_type="token",
            credential=cluster_token,
            verify_tls=False,
        )
        for env in ("test", "prod")
    }
    environments = {
        env: ProjectEnvironment.objects.create(
            project=people.project,
            environment=env,
            cluster=clusters[env],
            namespace=f"orders-{env}",
            spec={"request": dict(VALID_REQUEST), "overrides": {}},
            live_objects=[{"kind": "Deployment", "name": "orders"}],
            provisioned_at=timezone.now(),
        )
        for env in ("test", "prod")
    }
    ticket = OnboardingTicket.objects.create(
        project=people.project, environment="test", created_by=people.developer, request=dict(VALID_REQUEST)
    )
    # The data migrations seed a recipe per language.
    recipe = BuildRecipe.objects.filter(language="java").order_by("-version").first()
    # Released by ops: confirming one's own release is refused by state before rights.
    release = Release.objects.create(
        project=people.project,
        environment="test",
        created_by=people.ops,
        branch="main",
        version="1.0.0",
        status="deployed",
        recipe=recipe,
        finished_at=timezone.now(),
    )
    records = {
        env: DeploymentRecord.objects.create(
            project=people.project,
            environment=env,
            kind="release",
            release=release,
            image=f"registry.local/orders@sha256:{'0' * 63}{index}",
            outcome="succeeded",
            actor=people.developer,
            finished_at=timezone.now(),
        )
        for index, env in enumerate(("test", "prod"))
    }
    config_change = ConfigChange.objects.create(
        environment=environments["test"], actor=people.developer, status="applied", request={}
    )
    terminal_session = TerminalSession.objects.create(
        user=people.developer,
        username=people.developer.username,
        project=people.project,
        environment="test",
        cluster_name=clusters["test"].name,
        namespace="orders-test",
        pod="orders-0",
        container="orders",
        ended_at=timezone.now(),
        recording="world-session.cast",
    )
    (recordings_dir / "world-session.cast").write_text(
        '{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "$ "]\n'
    )
    terminal_grant = ProdTerminalGrant.objects.create(
        project=people.project,
        user=people.developer,
        granted_by=people.ops,
        granted_at=timezone.now(),
        expires_at=timezone.now() + timedelta(hours=8),
    )
    refused_pattern = RefusedCommandPattern.objects.create(
        environment="test", kind="regex", pattern=r"^world-refused\b", created_by=people.ops
    )
    channels = {
        "project": Channel.objects.create(
            project=people.project, name="orders-robot", kind="wecom", secret='{"key": "world-wecom-key"}'
        ),
        "ops": Channel.objects.create(
            project=None, name="ops-mail", kind="email", config={"recipients": ["ops@example.com"]}
        ),
    }
    alert = Alert.objects.create(
        fingerprint="00000000000000aa",
        starts_at=timezone.now(),
        status="firing",
        alertname="ErrorRatioHigh",
        project=people.project,
        environment="prod",
        labels={"alertname": "ErrorRatioHigh", "project": people.project.name, "env": "prod"},
    )
    alert_policy = Policy.objects.create(project=people.project, environment="prod", severity="critical")
    alert_policy.channels.set([channels["project"]])
    apollo = ApolloSettings.objects.create(project=people.project, app_id="orders", token=APOLLO_TOKEN)
    log_pipeline = LogPipeline.objects.create(
        cluster=clusters["test"], kafka_bootstrap_servers="kafka.example:9092", password=LOG_PROXY_PASSWORD
    )
    log_proxy_rollout = LogProxyRollout.objects.create(
        pipeline=log_pipeline, created_by=people.ops, git_project="ops/logproxy", branch="main", version="1"
    )
    return World(
        log_pipeline=log_pipeline,
        log_proxy_rollout=log_proxy_rollout,
        apollo=apollo,
        alert=alert,
        channels=channels,
        people=people,
        alert_policy=alert_policy,
        superuser=superuser,
        clusters=clusters,
        environments=environments,
        ticket=ticket,
        release=release,
        config_change=config_change,
        terminal_session=terminal_session,
        recipe=recipe,
        records=records,
        terminal_grant=terminal_grant,
        refused_pattern=refused_pattern,
    )


@pytest.fixture
def world(people, settings, tmp_path) -> World:
    settings.TERMINAL_RECORDINGS_DIR = tmp_path
    settings.APOLLO_PORTAL_URL = ""  # the world's Apollo settings point nowhere: no call leaves the test
    return build_world(people, tmp_path)
