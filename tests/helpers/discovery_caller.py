"""A bounded caller that finds a service through a real Eureka server the way a Spring Cloud caller does.

Two caches sit between the registry and each request, as in Spring Cloud: the Eureka client's local copy
of the registry, fetched every ``fetch_seconds`` (``registry-fetch-interval-seconds``; only UP instances
are kept, as the client filters them), and the load balancer's instance list, refreshed from that copy
once it is ``lb_cache_seconds`` old (Spring Cloud LoadBalancer's cache TTL), its clock half a period off
the fetches'. Requests go out at a fixed rate, round-robin over the load balancer's list, each on a new
connection with a short timeout, until :meth:`stop` or the hard deadline ``max_seconds``. Every outcome
is kept with its time, so a test can count failures per scenario and say when they happened.
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

# A failed fetch keeps the last copy, as the Eureka client does.
FETCH_TIMEOUT = 2.0
CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 2.0


@dataclass(frozen=True)
class Call:
    at: float  # time.monotonic() when the request was sent
    target: str  # "ip:port", or "" when the load balancer had no instance
    ok: bool
    outcome: str  # "200", "503", "refused", "reset", "timeout", "no instance", ...


def up_instances(eureka_url: str, app: str) -> list[str]:
    """The app's UP instances as ``ip:port``, straight from the server (its read-only cache is off in
    tests), or raises on a failed fetch."""
    response = requests.get(
        f"{eureka_url.rstrip('/')}/apps/{app.upper()}",
        headers={"Accept": "application/json"},
        timeout=FETCH_TIMEOUT,
    )
    if response.status_code == 404:  # no instance left: the server forgets the app
        return []
    response.raise_for_status()
    instances = response.json()["application"]["instance"]
    if isinstance(instances, dict):
        instances = [instances]
    return sorted(f"{i['ipAddr']}:{i['port']['$']}" for i in instances if i["status"] == "UP")


def _classify(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timeout"
    text = str(exc).lower()
    if "refused" in text:
        return "refused"
    if "reset" in text or "aborted" in text or "remotedisconnected" in text:
        return "reset"
    if "no route" in text or "unreachable" in text:
        return "unreachable"
    return type(exc).__name__


class DiscoveryCaller:
    def __init__(
        self,
        eureka_url: str,
        app: str,
        *,
        fetch_seconds: float,
        lb_cache_seconds: float,
        rate: float = 20.0,
        path: str = "/",
        max_seconds: float = 240.0,
    ) -> None:
        self.eureka_url, self.app, self.path = eureka_url, app, path
        self.fetch_seconds, self.lb_cache_seconds = fetch_seconds, lb_cache_seconds
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.calls: list[Call] = []
        self.fetch_errors: list[tuple[float, str]] = []
        self.fetches: list[tuple[float, list[str]]] = []  # each fetch's UP instances, with its time
        self.lb_loads: list[tuple[float, list[str]]] = []  # each load-balancer reload, with its time
        self._registry: list[str] = []
        self._lb: list[str] = []
        self._lb_loaded = 0.0
        self._round_robin = itertools.count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Enough workers that requests hanging on a gone pod (up to the connect timeout) never slow the rate.
        self._pool = ThreadPoolExecutor(max_workers=int(rate * (CONNECT_TIMEOUT + READ_TIMEOUT)) + 4)
        self._threads = [
            threading.Thread(target=self._fetch_loop, name="caller-fetch", daemon=True),
            threading.Thread(target=self._send_loop, name="caller-send", daemon=True),
        ]

    # --- the two caches ---------------------------------------------------------------------------------

    def _fetch(self) -> None:
        try:
            found = up_instances(self.eureka_url, self.app)
        except (requests.RequestException, KeyError, ValueError) as exc:
            self.fetch_errors.append((time.monotonic(), str(exc)))
            return
        with self._lock:
            self._registry = found
            self.fetches.append((time.monotonic(), found))

    def _fetch_loop(self) -> None:
        while not self._stop.wait(self.fetch_seconds):
            self._fetch()

    def _pick(self) -> str:
        with self._lock:
            now = time.monotonic()
            if now - self._lb_loaded >= self.lb_cache_seconds:
                self._lb, self._lb_loaded = list(self._registry), now
                self.lb_loads.append((now, self._lb))
            if not self._lb:
                return ""
            return self._lb[next(self._round_robin) % len(self._lb)]

    def lb_view(self) -> list[str]:
        with self._lock:
            return list(self._lb)

    # --- requests -------------------------------------------------------------------------------------

    def _call(self, at: float, target: str) -> None:
        if not target:
            call = Call(at, "", False, "no instance")
        else:
            try:
                response = requests.get(
                    f"http://{target}{self.path}",
                    timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                    headers={"Connection": "close"},
                )
                call = Call(at, target, response.status_code < 500, str(response.status_code))
            except requests.RequestException as exc:
                call = Call(at, target, False, _classify(exc))
        with self._lock:
            self.calls.append(call)

    def _send_loop(self) -> None:
        started = time.monotonic()
        next_at = started
        while not self._stop.is_set() and time.monotonic() - started < self.max_seconds:
            now = time.monotonic()
            if now < next_at:
                self._stop.wait(next_at - now)
                continue
            self._pool.submit(self._call, now, self._pick())
            next_at += self.interval

    # --- life -------------------------------------------------------------------------------------------

    def start(self) -> DiscoveryCaller:
        self._fetch()  # the client's first fetch happens at start
        # The load balancer starts with that copy, but its clock half a period off the fetches': in lock
        # step (reloads just after each fetch) a pod could leave every cache within a few milliseconds of
        # leaving Eureka, a real caller's lucky case; here it stays listed F/2..F + L/2 s, the middle case.
        with self._lock:
            self._lb = list(self._registry)
            self._lb_loaded = time.monotonic() - self.lb_cache_seconds / 2
            self.lb_loads.append((time.monotonic(), self._lb))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._pool.shutdown(wait=True)

    def __enter__(self) -> DiscoveryCaller:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- figures ----------------------------------------------------------------------------------------

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def failures(self) -> list[Call]:
        return [c for c in self.snapshot() if not c.ok]

    def timeline(self, target: str) -> str:
        """When ``target`` left the caller's registry copy and its load-balancer list, and when requests to
        it failed, in seconds from the caller's start."""
        calls = self.snapshot()
        if not calls:
            return ""
        start = calls[0].at

        def left(history: list[tuple[float, list[str]]]) -> str:
            seen = [at for at, targets in history if target in targets]
            after = [at for at, targets in history if seen and at > seen[-1] and target not in targets]
            return f"+{after[0] - start:.2f}s" if after else "never"

        failed = [c.at - start for c in calls if c.target == target and not c.ok]
        ok = [c.at - start for c in calls if c.target == target and c.ok]
        return (
            f"{target}: last success +{ok[-1] if ok else 0:.2f}s, failures {len(failed)}"
            f"{f' +{failed[0]:.2f}s..+{failed[-1]:.2f}s' if failed else ''}, left the registry copy "
            f"{left(self.fetches)}, left the load balancer {left(self.lb_loads)}"
        )

    def summary(self) -> str:
        calls = self.snapshot()
        failed = [c for c in calls if not c.ok]
        if not calls:
            return "0 requests"
        start = calls[0].at
        kinds: dict[str, int] = {}
        per_target: dict[str, int] = {}
        for call in failed:
            kinds[call.outcome] = kinds.get(call.outcome, 0) + 1
            per_target[call.target] = per_target.get(call.target, 0) + 1
        span = (
            f", failures between +{failed[0].at - start:.1f}s and +{failed[-1].at - start:.1f}s"
            if failed
            else ""
        )
        return (
            f"{len(calls)} requests over {calls[-1].at - start:.0f}s, {len(failed)} failed {kinds}"
            f"{' by target ' + str(per_target) if failed else ''}{span}"
        )
