"""The environment WebSocket: shared watches sent as JSON, access, log following, limits, no thread leaks."""

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from channels.layers import channel_layers
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from kubernetes import client as k8s

from clusters.consumers.environment import live_threads
from clusters.consumers.watch_hub import hub
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
    # Each scenario gets a new loop, and so a new channel layer: the Redis layer's locks belong to the
    # loop that first used them (Daphne has one loop, and one layer).
    channel_layers.backends.clear()
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


@pytest.mark.parametrize("layer", ["redis", "in-memory"])
def test_two_sockets_share_the_watches_and_the_last_one_out_stops_them(
    people, env, kube_cluster, settings, layer
):
    if layer == "in-memory":  # what `make run` uses: the fan-out never leaves the process
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    else:
        assert "Redis" in settings.CHANNEL_LAYERS["default"]["BACKEND"]
    baseline = kube_cluster.namespaced_watches()

    async def scenario():
        first, second = _communicator(people.viewer), _communicator(people.developer)
        assert (await first.connect(timeout=10))[0]
        await _until(first, lambda m: "pods" in m and len(m["pods"]["items"]) == 2)
        assert (await second.connect(timeout=10))[0]
        # The second gets the current state from the running watches, at once, and starts none.
        state = await _until(second, lambda m: {"pods", "hpa", "service", "deployment", "events"} <= set(m))
        assert len(state["pods"]["items"]) == 2
        assert len(live_threads()) == 5 and hub.watch_count() == 5

        await asyncio.to_thread(
            k8s.AppsV1Api(kube_cluster.api_client).patch_namespaced_deployment_scale,
            "orders",
            env.namespace,
            {"spec": {"replicas": 3}},
        )
        for communicator in (first, second):
            await _next(communicator, "deployment", where=lambda m: m["item"]["replicas"] == 3)
            await _next(communicator, "pods", where=lambda m: len(m["items"]) == 3)

        await first.disconnect()
        assert hub.watch_count() == 5  # the other viewer still watches
        assert len(live_threads()) == 5
        await second.disconnect()
        assert hub.watch_count() == 0
        await _threads_gone()
        # The apiserver sees the watches end too, long before their 50 s timeout.
        deadline = time.monotonic() + 10
        while kube_cluster.namespaced_watches().get("pods", 0) > baseline.get("pods", 0):
            assert time.monotonic() < deadline, kube_cluster.namespaced_watches()
            await asyncio.sleep(0.1)

    run_async(scenario())


def test_past_the_watch_limit_a_socket_says_so_and_starts_nothing(people, env, settings):
    settings.ENVIRONMENT_WATCH_MAX_KEYS = 4  # fewer than the five kinds of one environment

    async def scenario():
        communicator = _communicator(people.viewer)
        assert (await communicator.connect(timeout=10))[0]
        error = await _next(communicator, "error")
        assert error["source"] == "live" and "limit" in error["message"]
        assert not live_threads() and hub.watch_count() == 0
        await communicator.disconnect()

    run_async(scenario())


def test_log_followers_are_capped_per_process(people, env, kube_cluster, settings):
    settings.ENVIRONMENT_LOG_FOLLOWERS_MAX = 1

    async def scenario():
        pod = pod_names(kube_cluster, env.namespace)[0]
        kube_cluster.cluster.set_pod_logs(env.namespace, pod, ["hello"], follow=True)
        first, second = _communicator(people.viewer), _communicator(people.developer)
        assert (await first.connect(timeout=10))[0]
        assert (await second.connect(timeout=10))[0]
        await first.send_json_to({"type": "follow", "pod": pod})
        await _next(first, "log-start")
        await second.send_json_to({"type": "follow", "pod": pod})
        refused = await _next(second, "log-error")
        assert "limit" in refused["message"]
        await first.send_json_to({"type": "unfollow"})
        # The slot is free again once the first follower stopped.
        deadline = time.monotonic() + 10
        while True:
            await second.send_json_to({"type": "follow", "pod": pod})
            message = await _next_of(second, ("log-start", "log-error"))
            if message["type"] == "log-start":
                break
            assert time.monotonic() < deadline, message
            await asyncio.sleep(0.2)
        await first.disconnect()
        await second.disconnect()
        await _threads_gone()

    run_async(scenario())


async def _next_of(communicator, wanted: tuple[str, ...], timeout=20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = await communicator.receive_json_from(timeout=max(0.1, deadline - time.monotonic()))
        if message["type"] in wanted:
            return message


def test_a_socket_that_dies_without_a_disconnect_still_stops_its_watches(people, env):
    async def scenario():
        communicator = _communicator(people.viewer)
        assert (await communicator.connect(timeout=10))[0]
        await _until(communicator, lambda m: "pods" in m)
        assert hub.watch_count() == 5
        # As when the server cancels the application, or a send to a gone browser raises.
        communicator.future.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await communicator.future
        assert hub.watch_count() == 0
        await _threads_gone()

    run_async(scenario())
