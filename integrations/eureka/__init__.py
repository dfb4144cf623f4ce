"""Eureka REST client: an app's instances and their status override."""

from integrations.eureka.client import EurekaClient, EurekaInstance, check_service_url

__all__ = ["EurekaClient", "EurekaInstance", "check_service_url"]
