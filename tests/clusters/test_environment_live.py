"""The environment WebSocket: watches pushed as JSON, access, log following, and no leaked threads."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from kubernetes import client as k8s

from clusters.consumers.environment import live_threads
from clusters.routing import websocket_urlpatterns
from tests.helpers.environments import pod_names, provision

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.kube]

APP = URLRouter(websocket_urlpatterns)


def _communicator(user, environment="test"):
    communicator = WebsocketCommunicator(APP, f"/ws/environments/orders/{environment}/")
    communicator.scope["user"] = user
    return communicator


def run_async(coro):
    # The browser tests' Playwright keeps an event loop running in this thread for the whole session.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _next(communicator, wanted, timeout=20.0, where=lambda m: True):
    deadline = time.monotonic() + timeout
    while True:
        message = await communicator.receive_json_from(timeout=max(0.1, deadline - time.monotonic()))
        if message["type"] == wanted and where(message):
            return message


async def _until(communicator, done, timeout=20.0) -> dict:
    """Collect the latest message of each type until ``done(latest)`` holds."""
    latest: dict = {}
    deadline = time.monotonic() + timeout
    while not done(latest):
        message = await communicator.receive_json_from(timeout=max(0.1, deadline - time.monotonic()))
        latest[message["type"]] = message
    return latest


async def _threads_gone(timeout=10.0):
    deadline = time.monotonic() + timeout
    while live_threads():
        if time.monotonic() > deadline:
            raise AssertionError(f"threads left running: {[t.name for t in live_threads()]}")
        await asyncio.sleep(0.05)


@pytest.fixture
def env(people, local_clusters):
    return provision(people, local_clusters["test"])


def test_socket_sends_state_then_follows_a_deleted_pod_and_stops_every_thread(people, env, kube_cluster):
    async def scenario():
        communicator = _communicator(people.viewer)
        connected, _ = await communicator.connect(timeout=10)
        assert connected
        state = await _until(
            communicator,
            lambda m: {"pods", "hpa", "service", "deployment", "events"} <= set(m)
            and len(m["pods"]["items"]) == 2,
        )
        names = [p["name"] for p in state["pods"]["items"]]
        assert all(p["phase"] == "Running" for p in state["pods"]["items"])
        assert state["hpa"]["item"]["max_replicas"] == 5
        assert state["service"]["item"]["type"] == "ClusterIP"
        assert state["deployment"]["item"]["name"] == "orders"
        assert len(live_threads()) == 5

        victim = names[0]
        await asyncio.to_thread(
            k8s.CoreV1Api(kube_cluster.api_client).delete_namespaced_pod, victim, env.namespace
        )
        gone = await _next(
            communicator, "pods", where=lambda m: victim not in [p["name"] for p in m["items"]]
        )
        assert victim not in [p["name"] for p in gone["items"]]

        # Follow a container's log, then stop: the follower thread ends too.
        pod = [p for p in pod_names(kube_cluster, env.namespace) if p != victim][0]
        kube_cluster.cluster.set_pod_logs(env.namespace, pod, ["hello", "world"])
        lines = []
        deadline = time.monotonic() + 20
        while lines[-2:] != ["hello", "world"]:
            assert time.monotonic() < deadline, lines
            lines = []
            await communicator.send_json_to({"type": "follow", "pod": pod, "tail": 10})
            await _next(communicator, "log-start")
            while True:
                message = await _next(communicator, "log", timeout=5)
                lines.append(message["line"])
                if message["line"] == "world" or message["line"].startswith("kwok fake"):
                    break
        await communicator.send_json_to({"type": "follow", "pod": "not-ours"})
        error = await _next(communicator, "log-error")
        assert "not-ours" in error["message"]

        await communicator.disconnect()
        await _threads_gone()

    run_async(scenario())


def test_previous_log_without_a_previous_container_reports_the_apiserver_message(people, env, kube_cluster):
    async def scenario():
        communicator = _communicator(people.developer)
        assert (await communicator.connect(timeout=10))[0]
        pod = pod_names(kube_cluster, env.namespace)[0]
        await communicator.send_json_to({"type": "follow", "pod": pod, "previous": True})
        error = await _next(communicator, "log-error")
        assert error["message"]
        await communicator.disconnect()
        await _threads_gone()

    run_async(scenario())


def test_non_members_and_missing_environments_are_refused(people, env):
    async def scenario():
        for user, environment in ((people.outsider, "test"), (people.developer, "prod")):
            communicator = _communicator(user, environment)
            connected, _ = await communicator.connect(timeout=10)
            assert not connected
        assert not live_threads()

    run_async(scenario())
