"""Signals inside the alerting app. Sent on commit, so a receiver sees the committed rows."""

from django.dispatch import Signal

# An alert row was created or changed status (firing -> resolved, or a new firing). Arguments:
# ``alert_id`` (int) and ``transition`` (alerting.choices.AlertStatus value it moved to).
alert_transitioned = Signal()
