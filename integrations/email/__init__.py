"""Email through Django's SMTP backend, with SMTP failures mapped to the typed integration errors."""

from integrations.email.client import send_email

__all__ = ["send_email"]
