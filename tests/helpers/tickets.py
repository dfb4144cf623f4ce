"""Onboarding tickets provisioned as the worker would: the task applied in this process."""

from deploys import services
from deploys.choices import TicketStatus
from deploys.models import OnboardingTicket
from deploys.tasks import provision_ticket
from tests.fixtures.clusters import VALID_REQUEST


def run_provisioning(ticket: OnboardingTicket) -> OnboardingTicket:
    provision_ticket.apply(kwargs={"ticket_id": ticket.pk, "run_token": str(ticket.run_token)})
    ticket.refresh_from_db()
    return ticket


def approved_ticket(people, cluster, django_capture_on_commit_callbacks, **changes) -> OnboardingTicket:
    """A ticket filed by the developer and approved by ops onto ``cluster``; its provisioning is queued."""
    ticket = services.ticket_create(
        actor=people.developer,
        project=people.project,
        environment=cluster.environment,
        request={**VALID_REQUEST, **changes},
        submit=True,
    )
    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.ticket_approve(actor=people.ops, ticket_id=ticket.pk, cluster_id=cluster.pk)
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.APPROVED
    assert len(queued) >= 1  # the provisioning task is queued on commit, not before
    return ticket
