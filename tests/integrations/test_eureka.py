"""The Eureka client against the real Eureka server (sandbox/eureka), instances registered over REST as a
client registers them."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from integrations.errors import Invalid, NotFound, ServerError, Unauthorized, Unreachable
from integrations.eureka import EurekaClient, check_service_url
from sandbox.procs import free_port
from tests.helpers.eureka import instance, register


@pytest.fixture
def client(eureka_server) -> Iterator[EurekaClient]:
    with EurekaClient(eureka_server.eureka_url) as eureka:
        yield eureka


def test_instances_of_an_app_with_their_fields(eureka_server, client: EurekaClient, unique_app: str) -> None:
    url = eureka_server.eureka_url
    first = register(url, unique_app, "10.0.1.7", 8080, metadata={"project": "orders", "zone": "a"})
    second = register(url, unique_app, "10.0.1.8", 8081)

    found = {i.instance_id: i for i in client.instances(unique_app.lower())}  # app names are case-blind

    assert set(found) == {first, second}
    one = found[first]
    assert (one.app, one.host_name, one.ip_addr, one.port) == (unique_app, "10.0.1.7", "10.0.1.7", 8080)
    assert (one.status, one.overridden_status, one.out_of_service_override) == ("UP", "UNKNOWN", False)
    assert one.metadata == {"project": "orders", "zone": "a"}
    assert one.last_updated is not None
    assert abs(one.last_updated - datetime.now(UTC)) < timedelta(minutes=5)
    assert found[second].port == 8081 and found[second].metadata == {}


def test_an_app_eureka_does_not_know_has_no_instances(client: EurekaClient, unique_app: str) -> None:
    assert client.instances(unique_app) == []
    assert client.instance(unique_app, "10.0.9.9:nothing:8080") is None


def test_out_of_service_and_back(eureka_server, client: EurekaClient, unique_app: str) -> None:
    url = eureka_server.eureka_url
    taken = register(url, unique_app, "10.0.1.7")
    kept = register(url, unique_app, "10.0.1.8")

    client.status_override_set(unique_app, taken)

    # Seen by the server itself, not only by our reading of it.
    assert instance(url, unique_app, taken)["status"] == "OUT_OF_SERVICE"
    assert instance(url, unique_app, taken)["overriddenStatus"] == "OUT_OF_SERVICE"
    statuses = {i.instance_id: (i.status, i.out_of_service_override) for i in client.instances(unique_app)}
    assert statuses == {taken: ("OUT_OF_SERVICE", True), kept: ("UP", False)}

    client.status_override_remove(unique_app, taken)

    back = client.instance(unique_app, taken)
    assert back is not None and (back.status, back.overridden_status) == ("UP", "UNKNOWN")


def test_an_unknown_instance_is_not_found(client: EurekaClient, unique_app: str, eureka_server) -> None:
    register(eureka_server.eureka_url, unique_app, "10.0.1.7")
    with pytest.raises(NotFound) as missing:
        client.status_override_set(unique_app, "10.0.1.99:gone:8080")
    assert missing.value.status == 404


def test_no_server_is_unreachable() -> None:
    nobody = f"http://127.0.0.1:{free_port()}/eureka/"
    with EurekaClient(nobody) as eureka, pytest.raises(Unreachable) as down:
        eureka.instances("ORDERS")
    assert not down.value.permanent  # a task may retry; a page says so


@pytest.mark.parametrize(
    "url",
    ["ftp://eureka/eureka/", "http://user:secret@eureka:8761/eureka/", "eureka:8761", "", "http://h:99999/"],
)
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(Invalid):
        EurekaClient(url)


def test_the_service_url_is_normalised() -> None:
    assert check_service_url(" http://eureka:8761/eureka ") == "http://eureka:8761/eureka/"
    assert check_service_url("https://eureka.example/eureka/v2/") == "https://eureka.example/eureka/v2/"


# A secured or failing Eureka: a loopback server answering what such a server answers.


class _Answer(http.server.BaseHTTPRequestHandler):
    code = 401

    def log_message(self, *args) -> None:
        pass

    def _answer(self) -> None:
        body = b'{"error":"Unauthorized"}' if self.code == 401 else b"broken"
        self.send_response(self.code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_DELETE = _answer  # noqa: N815 - the stdlib's names


@pytest.fixture
def answering() -> Iterator:
    servers = []

    def start(code: int) -> str:
        handler = type("Handler", (_Answer,), {"code": code})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/eureka/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_secured_server_is_unauthorized_and_a_broken_one_a_server_error(answering) -> None:
    with EurekaClient(answering(401)) as secured, pytest.raises(Unauthorized) as refused:
        secured.instances("ORDERS")
    assert refused.value.status == 401 and "credentials" in refused.value.message
    with EurekaClient(answering(500)) as broken, pytest.raises(ServerError) as failed:
        broken.status_override_set("ORDERS", "10.0.1.7:orders:8080")
    assert failed.value.status == 500 and not failed.value.permanent
