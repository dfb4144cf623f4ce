"""A real Kafka broker (KRaft, from Maven Central) run on loopback for `make run` and the tests, with a
listener for pods on their bridge's gateway (see docs/sandbox.md)."""

from sandbox.kafka.build import HOW_TO_BUILD, BuildError, ensure_libs, libs_dir, libs_ready
from sandbox.kafka.server import KafkaError, KafkaServer

__all__ = ["HOW_TO_BUILD", "BuildError", "KafkaError", "KafkaServer", "ensure_libs", "libs_dir", "libs_ready"]
