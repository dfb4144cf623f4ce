"""A production history with known timestamps for the DORA tests, and what each part of it should give."""

from datetime import UTC, datetime, timedelta

from alerting.models import Alert
from deploys.models import DeploymentRecord, Release
from projects import services as project_services
from tests.fixtures.people import make_user

T0 = datetime(2026, 3, 2, tzinfo=UTC)
H = 3600
MINUTE = 60
DAY = 86400


def at(base: datetime, seconds: float) -> datetime:
    return base + timedelta(seconds=seconds)


class Seeder:
    def __init__(self, people, project, base: datetime):
        self.people, self.project, self.base = people, project, base
        self.count = 0

    def release(self, *, committed: float | None, environment="prod", **fields) -> Release:
        self.count += 1
        return Release.objects.create(
            project=self.project,
            environment=environment,
            created_by=self.people.developer,
            version=f"{self.project.name}-v{self.count}",
            status="deployed",
            committed_at=at(self.base, committed) if committed is not None else None,
            **fields,
        )

    def record(self, release, *, kind, started: float, finished: float | None, outcome="succeeded"):
        record = DeploymentRecord.objects.create(
            project=self.project,
            environment=release.environment,
            kind=kind,
            release=release,
            image=f"registry.local/{self.project.name}@sha256:{release.pk:064d}",
            outcome=outcome,
            actor=self.people.developer,
            finished_at=at(self.base, finished) if finished is not None else None,
        )
        # created_at is set on insert; the history needs it at a known moment.
        DeploymentRecord.objects.filter(pk=record.pk).update(created_at=at(self.base, started))
        return record

    def deploy(self, *, committed, started, finished, outcome="succeeded", environment="prod", **fields):
        release = self.release(committed=committed, environment=environment, **fields)
        kind = "promotion" if environment == "prod" else "release"
        return self.record(release, kind=kind, started=started, finished=finished, outcome=outcome)

    def alert(
        self,
        *,
        starts: float,
        ends: float | None = None,
        severity="critical",
        environment="prod",
        project=None,
    ):
        self.count += 1
        return Alert.objects.create(
            fingerprint=f"f{self.count:015d}",
            starts_at=at(self.base, starts),
            ends_at=at(self.base, ends) if ends is not None else None,
            status="resolved" if ends is not None else "firing",
            alertname="ErrorRatioHigh",
            severity=severity,
            project=project or self.project,
            environment=environment,
            labels={},
        )


def seed(people, base: datetime) -> dict:
    """The history of the test (seconds from ``base``), with what each deployment should give:

    D0  before the period: not counted.
    D1  committed -2 h, rollout 1 h → 1 h 10 min: lead 3 h 10 min; no failure.
    D2  committed 1 d -5 h, rollout 1 d → 1 d 10 min (lead 5 h 10 min); regressed at 1 d 20 min,
        rolled back (R1) at 1 d 30 min → 1 d 40 min: failed at 1 d 20 min, restored in 20 min.
    D3  rollout 2 d → 2 d 5 min failed; automatic rollback R2 2 d 6 min → 2 d 16 min: restored in 11 min.
    D4  committed 3 d -30 min, rollout 3 d → 3 d 10 min (lead 40 min); a critical alert 3 d 2 h →
        3 d 2 h 45 min (a warning, another project's and a test alert in the same window do not count):
        restored in 45 min.
    D5  no commit time, rollout 4 d → 4 d 10 min; a critical alert from 4 d 1 h still firing, and the next
        deployment (D6, after the period) failed: not restored.
    """
    s = Seeder(people, people.project, base)
    s.deploy(committed=-DAY - H, started=-DAY, finished=-DAY + 5 * MINUTE)  # D0
    d1 = s.deploy(committed=-2 * H, started=H, finished=H + 10 * MINUTE)
    d2 = s.deploy(
        committed=DAY - 5 * H,
        started=DAY,
        finished=DAY + 10 * MINUTE,
        verification_status="regressed",
        verified_at=at(base, DAY + 20 * MINUTE),
    )
    s.record(d1.release, kind="rollback", started=DAY + 30 * MINUTE, finished=DAY + 40 * MINUTE)  # R1
    d3 = s.deploy(committed=2 * DAY - H, started=2 * DAY, finished=2 * DAY + 5 * MINUTE, outcome="failed")
    s.record(d1.release, kind="rollback", started=2 * DAY + 6 * MINUTE, finished=2 * DAY + 16 * MINUTE)  # R2
    d4 = s.deploy(committed=3 * DAY - 30 * MINUTE, started=3 * DAY, finished=3 * DAY + 10 * MINUTE)
    s.alert(starts=3 * DAY + H, severity="warning")
    s.alert(starts=3 * DAY + 2 * H, ends=3 * DAY + 2 * H + 45 * MINUTE)
    s.alert(starts=3 * DAY + 90 * MINUTE, environment="test")
    d5 = s.deploy(committed=None, started=4 * DAY, finished=4 * DAY + 10 * MINUTE)
    s.alert(starts=4 * DAY + H)
    s.deploy(
        committed=7 * DAY, started=7 * DAY + 12 * H, finished=7 * DAY + 12 * H + 5 * MINUTE, outcome="failed"
    )
    # Test-environment deployments are another environment's figures.
    s.deploy(committed=0, started=2 * H, finished=2 * H + MINUTE, environment="test")

    other = project_services.project_create(
        actor=people.ops, name="billing", owner=make_user("bill-owner"), language="go"
    )
    b = Seeder(people, other, base)
    b.count = 100
    b.alert(starts=3 * DAY + 2 * H + 5 * MINUTE, project=other)  # billing's alert: not orders' failure
    b1 = b.deploy(committed=5 * DAY - H, started=5 * DAY, finished=5 * DAY + 20 * MINUTE)
    return {"d1": d1, "d2": d2, "d3": d3, "d4": d4, "d5": d5, "b1": b1, "billing": other}
