"""The real Spring Cloud Netflix Eureka server, built from Maven Central and run on loopback for `make run`
and the tests, reachable from pods through a relay on their gateway (see docs/sandbox.md)."""

from sandbox.eureka.build import HOW_TO_BUILD, BuildError, ensure_jar, jar_path, jar_ready
from sandbox.eureka.server import EurekaError, EurekaServer

__all__ = ["HOW_TO_BUILD", "BuildError", "EurekaError", "EurekaServer", "ensure_jar", "jar_path", "jar_ready"]
