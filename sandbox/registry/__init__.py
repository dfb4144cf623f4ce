"""The real distribution registry, launched on loopback for the sandbox (see docs/standins.md)."""

from sandbox.registry.server import RegistryError, RegistryServer, find_binary

__all__ = ["RegistryError", "RegistryServer", "find_binary"]
