"""Writes of the deploys app: onboarding tickets (tickets.py) and releases (releases.py)."""

from deploys.services.releases import *  # noqa: F403
from deploys.services.tickets import *  # noqa: F403
