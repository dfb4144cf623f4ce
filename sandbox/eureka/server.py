"""Run the sandbox's Eureka server (a real Spring Cloud Netflix Eureka server, see build.py) on loopback.

Started as ``java -Xmx256m -jar eureka-server.jar`` with the standalone test properties the integrations
reference measured: the read-only response cache off (``GET /eureka/apps/{APP}`` shows a status change at
once instead of up to 30 s later), self-preservation off, no wait for peers at start, hostname
``localhost`` with ``defaultZone`` pointing at itself (otherwise it replicates every change to itself and
logs failures), and neither registering with nor fetching from any other server.

Pods cannot reach loopback: :meth:`EurekaServer.pod_url` starts a relay on their bridge's gateway
(``10.0.N.1``) and returns the ``http://10.0.N.1:<port>/eureka/`` they can use.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.eureka.build import HOW_TO_BUILD, jar_path
from sandbox.maven import find_java
from sandbox.procs import ReadyServer, free_port, http_ok, port_free
from sandbox.relay import TcpRelay

READY_TIMEOUT_SECONDS = 180.0  # 20 s measured on an idle machine; the suite's start shares 2 cores
HEAP = "-Xmx256m"


class EurekaError(RuntimeError):
    pass


def test_properties(port: int) -> dict[str, str]:
    return {
        "server.address": "127.0.0.1",
        "server.port": str(port),
        "eureka.instance.hostname": "localhost",
        "eureka.client.register-with-eureka": "false",
        "eureka.client.fetch-registry": "false",
        "eureka.client.service-url.defaultZone": f"http://localhost:{port}/eureka/",
        "eureka.server.enable-self-preservation": "false",
        "eureka.server.wait-time-in-ms-when-sync-empty": "0",
        "eureka.server.use-read-only-response-cache": "false",
    }


class EurekaServer(ReadyServer):
    """The Eureka server on ``127.0.0.1:<port>`` (a free one unless given), its log under ``root``.

    ``start()`` returns :attr:`eureka_url` once ``GET /eureka/apps`` answers 200; ``properties`` add to
    (or replace) the test properties."""

    what = "the Eureka server"
    error = EurekaError
    ready_timeout = READY_TIMEOUT_SECONDS

    def __init__(
        self,
        root: Path | str,
        *,
        port: int = 0,
        jar: Path | str | None = None,
        properties: dict[str, str] | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.port = port
        self.jar = Path(jar) if jar else None
        self.properties = dict(properties or {})
        self.relays: dict[str, TcpRelay] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def eureka_url(self) -> str:
        """The service URL a client on this machine uses (Spring's ``defaultZone`` form)."""
        return f"{self.url}/eureka/"

    @property
    def log_file(self) -> Path:
        return self.root / "eureka.log"

    def ready(self) -> bool:
        return http_ok(f"{self.url}/eureka/apps")

    def start(self, *, wait: bool = True) -> str:
        """Spawn the server and (``wait``) wait until it answers. Without waiting, call
        :meth:`wait_ready` later, from any thread: the process must be spawned by a thread that lives as
        long as it should (the kernel's parent-death signal follows the spawning thread, not the process).
        """
        jar = self.jar or jar_path()
        if not jar.is_file():
            raise EurekaError(f"the Eureka server is not built ({jar} is missing); {HOW_TO_BUILD}")
        java = find_java()
        if java is None:
            raise EurekaError("java not found: apt-get install openjdk-17-jdk-headless")
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        properties = {**test_properties(self.port), **self.properties}
        args = [java, HEAP, "-jar", str(jar), *(f"--{key}={value}" for key, value in properties.items())]
        self.launch(args, log=self.log_file, cwd=self.root, wait=wait)
        return self.eureka_url

    def wait_ready(self) -> str:
        """Wait for a server started with ``wait=False``; EurekaError (and stopped) when it never answers."""
        self.await_ready(self.log_file)
        return self.eureka_url

    def pod_url(self, gateway: str) -> str:
        """The service URL for pods behind ``gateway`` (a bridge's ``10.0.N.1``): a relay listening there
        forwards to this server. The same port as the server's when it is free there; one relay per
        address, kept until :meth:`stop`."""
        relay = self.relays.get(gateway)
        if relay is None:
            port = self.port if port_free(self.port, gateway) else 0
            relay = TcpRelay(gateway, port, "127.0.0.1", self.port).start()
            self.relays[gateway] = relay
        return f"http://{relay.address}/eureka/"

    def stop(self) -> None:
        for relay in self.relays.values():
            relay.stop()
        self.relays.clear()
        super().stop()
