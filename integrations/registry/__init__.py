"""Container registry integration: ``RegistryClient``, ``Digest`` and ``image_ref``."""

from integrations.registry.client import (
    MANIFEST_ACCEPT,
    Digest,
    RegistryClient,
    image_ref,
    make_session,
)

__all__ = ["MANIFEST_ACCEPT", "Digest", "RegistryClient", "image_ref", "make_session"]
