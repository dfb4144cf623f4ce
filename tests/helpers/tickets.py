"""Onboarding tickets provisioned as the worker would: the task applied in this process."""

from deploys.models import OnboardingTicket
from deploys.tasks import provision_ticket


def run_provisioning(ticket: OnboardingTicket) -> OnboardingTicket:
    provision_ticket.apply(kwargs={"ticket_id": ticket.pk, "run_token": str(ticket.run_token)})
    ticket.refresh_from_db()
    return ticket
