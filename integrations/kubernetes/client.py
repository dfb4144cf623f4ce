"""The portal's only way to talk to a Kubernetes apiserver.

Each ``KubeClient`` owns a dedicated ``kubernetes.client.ApiClient`` (no global configuration) whose
TLS context is built in memory, sends every request with a (connect, read) timeout, speaks the
generic REST paths with plain dicts, and turns every failure into an ``integrations.errors`` class.
"""

from __future__ import annotations

import json
import os
import re
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

import urllib3
import websocket
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from kubernetes.stream.ws_client import WSClient

from integrations.errors import (
    Conflict,
    IntegrationError,
    Invalid,
    NotFound,
    ServerError,
    Timeout,
    Unauthorized,
    Unreachable,
)
from integrations.kubernetes.config import Connection, parse_kubeconfig

DEFAULT_TIMEOUT = (5, 30)  # (connect, read) seconds
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
USER_AGENT = "opsportal"


@dataclass(frozen=True)
class Kind:
    api_version: str
    plural: str
    namespaced: bool = True

    @property
    def prefix(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"


KINDS: dict[str, Kind] = {
    "Namespace": Kind("v1", "namespaces", namespaced=False),
    "Service": Kind("v1", "services"),
    "Pod": Kind("v1", "pods"),
    "Secret": Kind("v1", "secrets"),
    "Deployment": Kind("apps/v1", "deployments"),
    "ReplicaSet": Kind("apps/v1", "replicasets"),
    "HorizontalPodAutoscaler": Kind("autoscaling/v2", "horizontalpodautoscalers"),
    "PodDisruptionBudget": Kind("policy/v1", "poddisruptionbudgets"),
    "Event": Kind("v1", "events"),
    # The Prometheus Operator's, on clusters that run it (the portal renders one per environment there).
    "ServiceMonitor": Kind("monitoring.coreos.com/v1", "servicemonitors"),
}


# --- small results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerVersion:
    git_version: str
    major: str = ""
    minor: str = ""
    platform: str = ""


@dataclass(frozen=True)
class PodInfo:
    name: str
    phase: str
    ready: bool
    restarts: int
    node_name: str = ""
    pod_ip: str = ""
    reason: str = ""  # a waiting/terminated container's reason, e.g. CrashLoopBackOff
    created_at: str = ""
    labels: dict = field(default_factory=dict)
    namespace: str = ""
    annotations: dict = field(default_factory=dict)
    terminating: bool = False


class Rollout:
    COMPLETE = "complete"
    PROGRESSING = "progressing"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class RolloutOutcome:
    state: str
    desired: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0
    total: int = 0
    message: str = ""  # what the rollout waits for, or why it failed
    reason: str = ""  # the failing condition's reason, e.g. ProgressDeadlineExceeded
    revision: str = ""

    @property
    def done(self) -> bool:
        return self.state in (Rollout.COMPLETE, Rollout.FAILED)

    @property
    def succeeded(self) -> bool:
        return self.state == Rollout.COMPLETE


def rollout_status(deployment: dict) -> RolloutOutcome:
    """``kubectl rollout status`` decision for one Deployment object (contracts.md 3.3)."""
    meta, spec, status = (
        deployment.get("metadata", {}),
        deployment.get("spec", {}),
        deployment.get("status", {}),
    )
    desired = spec.get("replicas", 1)
    counts = {
        "desired": desired,
        "updated": status.get("updatedReplicas", 0),
        "ready": status.get("readyReplicas", 0),
        "available": status.get("availableReplicas", 0),
        "total": status.get("replicas", 0),
        "revision": (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision", ""),
    }
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return RolloutOutcome(
            Rollout.PROGRESSING, message="waiting for the spec update to be observed", **counts
        )
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    progressing = conditions.get("Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        failure = conditions.get("ReplicaFailure") or {}
        message = progressing.get("message", "")
        if failure.get("message"):
            message = f"{message}; {failure['message']}"
        return RolloutOutcome(Rollout.FAILED, reason="ProgressDeadlineExceeded", message=message, **counts)
    updated, total, available = counts["updated"], counts["total"], counts["available"]
    if desired is not None and updated < desired:
        message = f"{updated} of {desired} new replicas updated"
    elif total > updated:
        message = f"{total - updated} old replicas pending termination"
    elif available < updated:
        message = f"{available} of {updated} updated replicas available"
    else:
        return RolloutOutcome(Rollout.COMPLETE, message="rollout complete", **counts)
    return RolloutOutcome(Rollout.PROGRESSING, message=message, **counts)


# --- error mapping ------------------------------------------------------------------------------------


def _status_body(exc: ApiException) -> dict:
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def error_from_api_exception(exc: ApiException) -> IntegrationError:
    code = exc.status or 0
    body = _status_body(exc)
    message = body.get("message") or (exc.reason or "").strip() or f"HTTP {code}"
    reason = body.get("reason") or exc.reason or ""
    kwargs = {"cause": reason, "status": code or None, "details": body.get("details") or {}}
    if code == 0:  # the client wraps TLS failures as status 0
        return Unreachable(
            "TLS handshake with the apiserver failed", permanent=True, **{**kwargs, "cause": message}
        )
    if code in (401, 403):
        return Unauthorized(message, **kwargs)
    if code == 404:
        return NotFound(message, **kwargs)
    if code in (409, 410):
        return Conflict(message, **kwargs)
    if code in (400, 422):
        causes = (body.get("details") or {}).get("causes") or [{"field": "", "message": message}]
        return Invalid(message, causes=causes, **kwargs)
    if code == 429 or code >= 500:
        return ServerError(message, **kwargs)
    return IntegrationError(message, **kwargs)


def error_from_transport(exc: Exception) -> IntegrationError:
    reason = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason else exc
    cause = str(reason)
    # NewConnectionError subclasses ConnectTimeoutError in urllib3 2.x, so it is tested first.
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        return Unreachable("cannot connect to the apiserver", cause=cause)
    if isinstance(reason, urllib3.exceptions.SSLError | ssl.SSLError):
        return Unreachable("TLS handshake with the apiserver failed", permanent=True, cause=cause)
    if isinstance(reason, urllib3.exceptions.TimeoutError | TimeoutError):
        return Timeout("the apiserver did not answer in time", cause=cause)
    return Unreachable("connection to the apiserver failed", cause=cause)


# --- exec sessions ------------------------------------------------------------------------------------


class _NoCapture:
    def write(self, _data) -> None:
        pass


class ExecSession(WSClient):
    """``kubernetes.stream``'s ``WSClient`` over a socket that was opened with the portal's in-memory TLS
    context (the library's own ``create_websocket`` only takes certificate *files*). Binary: the
    channels carry bytes, so a UTF-8 character split across frames is never mangled."""

    def __init__(self, sock: websocket.WebSocket) -> None:
        self._connected = True
        self._channels = {}
        self.binary = True
        self.newline = b"\n"
        self._all = _NoCapture()
        self.sock = sock
        self._returncode = None


def _websocket_error(exc: websocket.WebSocketBadStatusException) -> IntegrationError:
    body = exc.resp_body.decode(errors="replace") if isinstance(exc.resp_body, bytes) else ""
    api_exc = ApiException(status=exc.status_code, reason=str(exc))
    api_exc.body = body
    return error_from_api_exception(api_exc)


# --- the client ---------------------------------------------------------------------------------------


def _ssl_context(connection: Connection) -> ssl.SSLContext:
    # Without a CA of its own the cluster is checked against the system's trusted roots.
    try:
        context = ssl.create_default_context(cadata=connection.ca_pem or None)
    except ssl.SSLError as exc:
        raise Invalid("the CA certificate cannot be loaded", cause=str(exc)) from None
    if not connection.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if connection.client_cert_pem:
        # The ssl module only loads key pairs from files: write them privately, load, delete.
        with tempfile.TemporaryDirectory(prefix="opsportal-kube-") as tmp:
            path = os.path.join(tmp, "client.pem")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(connection.client_cert_pem.strip() + "\n" + connection.client_key_pem.strip() + "\n")
            try:
                context.load_cert_chain(path)
            except ssl.SSLError as exc:
                raise Invalid("the client certificate or key cannot be loaded", cause=str(exc)) from None
    return context


class KubeClient:
    # Requests sent by every client in this process (watches count once); read by the benchmarks.
    requests_sent = 0

    def __init__(self, connection: Connection, *, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.connection = connection
        self.timeout = timeout
        configuration = k8s.Configuration(host=connection.server)
        self._api = k8s.ApiClient(configuration)
        self._api.user_agent = USER_AGENT
        if connection.token:
            self._api.set_default_header("Authorization", f"Bearer {connection.token}")
        pool_args = {}
        if connection.server.startswith("https:"):
            pool_args["ssl_context"] = _ssl_context(connection)
            if not connection.verify_tls:
                pool_args["assert_hostname"] = False
            if connection.tls_server_name:
                pool_args["server_hostname"] = connection.tls_server_name
        # Connection errors are retried once; reads never (a POST or PATCH may have been applied).
        retries = urllib3.Retry(total=None, connect=1, read=False, redirect=0, status=0, other=0)
        self._api.rest_client.pool_manager = urllib3.PoolManager(
            num_pools=2, maxsize=4, retries=retries, **pool_args
        )

    # -- construction ----------------------------------------------------------------------------------

    @classmethod
    def from_token(
        cls, api_url: str, token: str, ca_pem: str = "", verify_tls: bool = True, **kwargs
    ) -> KubeClient:
        return cls(
            Connection(server=api_url.rstrip("/"), token=token.strip(), ca_pem=ca_pem, verify_tls=verify_tls),
            **kwargs,
        )

    @classmethod
    def from_kubeconfig_text(cls, text: str, **kwargs) -> KubeClient:
        return cls(parse_kubeconfig(text), **kwargs)

    @classmethod
    def from_cluster(cls, cluster, **kwargs) -> KubeClient:
        """From a ``clusters.Cluster``: its URL, CA and TLS setting win over the kubeconfig's."""
        if cluster.auth_type == "token":
            return cls.from_token(
                cluster.api_url, cluster.credential, cluster.ca_certificate, cluster.verify_tls, **kwargs
            )
        parsed = parse_kubeconfig(cluster.credential)
        connection = Connection(
            server=(cluster.api_url or parsed.server).rstrip("/"),
            ca_pem=cluster.ca_certificate or parsed.ca_pem,
            verify_tls=cluster.verify_tls,
            token=parsed.token,
            client_cert_pem=parsed.client_cert_pem,
            client_key_pem=parsed.client_key_pem,
            tls_server_name=parsed.tls_server_name,
        )
        return cls(connection, **kwargs)

    def close(self) -> None:
        self._api.rest_client.pool_manager.clear()
        self._api.close()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KubeClient({self.connection!r})"

    # -- plumbing --------------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: list[tuple[str, str]] | None = None,
        body: dict | None = None,
        content_type: str = "application/json",
        timeout: tuple[float, float] | None = None,
        stream: bool = False,
    ):
        KubeClient.requests_sent += 1
        try:
            return self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                response_type="object",
                _return_http_data_only=True,
                _preload_content=not stream,
                _request_timeout=timeout or self.timeout,
            )
        except ApiException as exc:
            raise error_from_api_exception(exc) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise error_from_transport(exc) from exc
        except ValueError as exc:  # an answer the client cannot decode
            raise IntegrationError("unexpected answer from the apiserver", cause=str(exc)[:300]) from exc

    @staticmethod
    def _kind(kind: str) -> Kind:
        try:
            return KINDS[kind]
        except KeyError:
            raise ValueError(f"Unsupported kind {kind!r}; known: {', '.join(sorted(KINDS))}.") from None

    def _path(self, kind: str, namespace: str | None, name: str | None = None) -> str:
        spec = self._kind(kind)
        path = spec.prefix
        if spec.namespaced:
            if not namespace:
                raise ValueError(f"A {kind} needs a namespace.")
            path += f"/namespaces/{quote(namespace, safe='')}"
        path += f"/{spec.plural}"
        return f"{path}/{quote(name, safe='')}" if name else path

    # -- reads -----------------------------------------------------------------------------------------

    def server_version(self) -> ServerVersion:
        data = self._request("GET", "/version")
        return ServerVersion(
            git_version=data.get("gitVersion", ""),
            major=data.get("major", ""),
            minor=data.get("minor", ""),
            platform=data.get("platform", ""),
        )

    def whoami(self) -> str:
        """The user name the apiserver sees for this credential (SelfSubjectReview, 1.28+)."""
        review = self._request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        return ((review.get("status") or {}).get("userInfo") or {}).get("username", "")

    def get(self, kind: str, namespace: str | None, name: str) -> dict | None:
        try:
            return self._request("GET", self._path(kind, namespace, name))
        except NotFound:
            return None

    def list_pods(self, namespace: str | None, label_selector: str = "") -> list[PodInfo]:
        """The pods of ``namespace``, or of every namespace when it is None (one request either way)."""
        query = [("labelSelector", label_selector)] if label_selector else []
        path = self._path("Pod", namespace) if namespace else "/api/v1/pods"
        data = self._request("GET", path, query=query)
        return sorted((_pod_info(item) for item in data.get("items") or []), key=lambda p: p.name)

    # -- writes ----------------------------------------------------------------------------------------

    def apply(
        self, obj: dict, field_manager: str = "opsportal", force: bool = True, *, dry_run: bool = False
    ) -> dict:
        """Server-side apply ``obj`` and return the object as stored (or as it would be, dry-run)."""
        meta = obj.get("metadata") or {}
        kind = self._kind(obj.get("kind", ""))
        if obj.get("apiVersion") != kind.api_version:
            raise ValueError(f"{obj.get('kind')} must have apiVersion {kind.api_version}.")
        if not meta.get("name"):
            raise ValueError("metadata.name is required.")
        # Strict: an unknown or misspelt field is an error, not silently dropped.
        query = [
            ("fieldManager", field_manager),
            ("force", "true" if force else "false"),
            ("fieldValidation", "Strict"),
        ]
        if dry_run:
            query.append(("dryRun", "All"))
        path = self._path(obj["kind"], meta.get("namespace"), meta["name"])
        try:
            return self._request("PATCH", path, query=query, body=obj, content_type=APPLY_CONTENT_TYPE)
        except ServerError as exc:
            if exc.status == 500 and "failed to convert new object" in exc.message:
                raise self._conversion_error(obj, exc) from exc
            raise

    def _conversion_error(self, obj: dict, exc: ServerError) -> Invalid:
        """Server-side apply answers 500 when the object cannot be decoded (e.g. cpu "1 core").

        That is bad input, not a server fault: a dry-run create of the same object gets the
        apiserver's field-level 422 causes; failing that, the conversion message is the cause.
        """
        collection = self._path(obj["kind"], (obj.get("metadata") or {}).get("namespace"))
        try:
            self._request("POST", collection, query=[("dryRun", "All")], body=obj)
        except Invalid as detailed:
            if any(cause["field"] for cause in detailed.causes):
                return detailed
        except IntegrationError:
            pass
        match = re.search(r"Kind=\w+: (.*)$", exc.message)
        reason = match.group(1) if match else exc.message
        return Invalid(exc.message, causes=[{"field": "", "message": reason}], status=422, cause="Invalid")

    def apply_dry_run(self, obj: dict, field_manager: str = "opsportal", force: bool = True) -> dict:
        return self.apply(obj, field_manager, force, dry_run=True)

    def set_image(self, namespace: str, name: str, container: str, image: str) -> dict:
        """Replace one container's image, like ``kubectl set image``; returns the Deployment."""
        patch = {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}}
        return self._request(
            "PATCH",
            self._path("Deployment", namespace, name),
            query=[("fieldManager", "opsportal-release")],
            body=patch,
            content_type="application/strategic-merge-patch+json",
        )

    def exec_stream(
        self, namespace: str, pod: str, container: str, command: list[str], tty: bool = True
    ) -> ExecSession:
        """Open ``pods/exec`` with stdin (contracts.md 3.8) and return the open ``WSClient``.

        Write stdin on channel 0 and resize ``{"Width","Height"}`` on channel 4; read stdout (1),
        stderr (2, merged into 1 with a TTY) and the final status (3). The caller owns the session:
        one thread at a time, and ``close()`` it. Errors before the upgrade map to
        ``integrations.errors`` classes as any other request does.
        """
        query = [("command", part) for part in command]
        query += [("container", container)] if container else []
        query += [("stdin", "true"), ("stdout", "true"), ("stderr", "false" if tty else "true")]
        query += [("tty", "true" if tty else "false")]
        path = f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec"
        url = "ws" + self.connection.server[len("http") :] + path + "?" + urlencode(query)
        header = ["sec-websocket-protocol: v4.channel.k8s.io"]
        if self.connection.token:
            header.append(f"authorization: Bearer {self.connection.token}")
        sslopt: dict = {}
        if url.startswith("wss:"):
            sslopt["context"] = _ssl_context(self.connection)
            if self.connection.tls_server_name:
                sslopt["server_hostname"] = self.connection.tls_server_name
        sock = websocket.WebSocket(sslopt=sslopt, skip_utf8_validation=True, enable_multithread=True)
        try:
            sock.connect(url, header=header, timeout=self.timeout[0])
        except websocket.WebSocketBadStatusException as exc:
            raise _websocket_error(exc) from exc
        except (websocket.WebSocketException, OSError) as exc:
            raise error_from_transport(exc) from exc
        sock.settimeout(self.timeout[1])
        return ExecSession(sock)

    def ensure_namespace(self, name: str, labels: dict[str, str] | None = None) -> dict:
        return self.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        )

    # -- rollouts --------------------------------------------------------------------------------------

    def wait_for_deployment(
        self,
        namespace: str,
        name: str,
        timeout: float,
        on_progress: Callable[[RolloutOutcome], None] | None = None,
        check: Callable[[], RolloutOutcome | None] | None = None,
        check_seconds: float = 5.0,
    ) -> RolloutOutcome:
        """Follow the Deployment with a watch until the rollout completes, fails or ``timeout`` passes.

        ``on_progress`` gets each new outcome. A ``ProgressDeadlineExceeded`` condition ends the wait
        at once with state ``failed``; the outcome carries the condition's reason and message.
        ``check`` is asked at least every ``check_seconds`` while the rollout runs; an outcome it returns
        ends the wait (the Deployment's status does not change while its new pods crash-loop, so only
        a look at the pods sees that).
        """
        deadline = time.monotonic() + timeout
        collection = self._path("Deployment", namespace)
        selector = ("fieldSelector", f"metadata.name={name}")
        last: RolloutOutcome | None = None

        def seen(obj: dict) -> RolloutOutcome:
            nonlocal last
            outcome = rollout_status(obj)
            if outcome != last and on_progress is not None:
                on_progress(outcome)
            last = outcome
            return outcome

        while True:  # list, then watch from the list's resourceVersion; re-list after 410 Gone
            listing = self._request("GET", collection, query=[selector])
            items = listing.get("items") or []
            if not items:
                raise NotFound(f'deployments.apps "{name}" not found', status=404)
            outcome = seen(items[0])
            if outcome.done:
                return outcome
            version = listing["metadata"]["resourceVersion"]
            try:
                while (remaining := deadline - time.monotonic()) > 0:
                    if check is not None:
                        verdict = check()
                        if verdict is not None:
                            return verdict
                        remaining = min(remaining, check_seconds)
                    for event in self._watch(collection, [selector], version, remaining):
                        obj = event.get("object") or {}
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if event.get("type") in ("ADDED", "MODIFIED"):
                            outcome = seen(obj)
                            if outcome.done:
                                return outcome
                        elif event.get("type") == "DELETED":
                            return RolloutOutcome(
                                Rollout.FAILED, reason="Deleted", message="the Deployment was deleted"
                            )
            except Conflict as exc:
                if exc.status != 410:
                    raise
                continue
            return _timed_out(last, timeout)

    def _watch(
        self,
        path: str,
        query: list,
        version: str,
        remaining: float,
        on_response: Callable[[object], None] | None = None,
    ) -> Iterator[dict]:
        seconds = max(1, int(remaining))
        response = self._request(
            "GET",
            path,
            query=[
                *query,
                ("watch", "true"),
                ("resourceVersion", version),
                ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", str(seconds)),
            ],
            timeout=(self.timeout[0], seconds + 10),
            stream=True,
        )
        if on_response is not None:
            on_response(response)
        for line in _response_lines(response, with_tail=False):
            if not line.strip():
                continue
            event = json.loads(line)
            if event.get("type") == "ERROR":
                raise _status_error(event.get("object") or {})
            yield event

    # -- environment pages: listing, watching, logs, small patches -------------------------------------

    def list_objects(
        self, kind: str, namespace: str | None, *, label_selector: str = "", field_selector: str = ""
    ) -> dict:
        """The raw list answer (``items`` and ``metadata.resourceVersion`` to watch from)."""
        query = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        return self._request("GET", self._path(kind, namespace), query=query)

    def watch(
        self,
        kind: str,
        namespace: str | None,
        *,
        resource_version: str,
        timeout_seconds: float,
        label_selector: str = "",
        field_selector: str = "",
        on_response: Callable[[object], None] | None = None,
    ) -> Iterator[dict]:
        """Watch events (``{"type", "object"}`` dicts, BOOKMARKs included) from ``resource_version``.

        Ends when the server closes the stream after ``timeout_seconds``; an ERROR event raises (410 Gone
        as ``Conflict`` with status 410: re-list). ``on_response`` gets the streaming response, so another
        thread can end a blocked read with ``response.shutdown()``."""
        query = []
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        return self._watch(
            self._path(kind, namespace), query, resource_version, timeout_seconds, on_response=on_response
        )

    def delete(self, kind: str, namespace: str | None, name: str) -> bool:
        """Delete one object, its dependents in the background (as kubectl does); False when it was
        already gone, so a repeated teardown is a no-op."""
        try:
            self._request(
                "DELETE", self._path(kind, namespace, name), query=[("propagationPolicy", "Background")]
            )
        except NotFound:
            return False
        return True

    def delete_pod(self, namespace: str, name: str) -> dict:
        return self._request("DELETE", self._path("Pod", namespace, name))

    def patch(self, kind: str, namespace: str | None, name: str, patch: dict) -> dict:
        """A strategic merge patch (containers merge by name), as ``kubectl patch`` sends."""
        return self._request(
            "PATCH",
            self._path(kind, namespace, name),
            query=[("fieldManager", "opsportal")],
            body=patch,
            content_type="application/strategic-merge-patch+json",
        )

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> dict:
        """Set ``spec.replicas`` through the scale subresource (what ``kubectl scale`` does)."""
        return self._request(
            "PATCH",
            self._path("Deployment", namespace, name) + "/scale",
            query=[("fieldManager", "opsportal")],
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
        )

    def _log_query(self, container: str, tail_lines: int | None, previous: bool, follow: bool) -> list:
        query = []
        if container:
            query.append(("container", container))
        if tail_lines is not None:
            query.append(("tailLines", str(tail_lines)))
        if previous:
            query.append(("previous", "true"))
        if follow:
            query.append(("follow", "true"))
        return query

    def pod_log(
        self,
        namespace: str,
        name: str,
        *,
        container: str = "",
        tail_lines: int | None = None,
        previous: bool = False,
    ) -> str:
        """A container's log as text; a 400 (e.g. no previous container) raises ``Invalid``."""
        response = self._request(
            "GET",
            self._path("Pod", namespace, name) + "/log",
            query=self._log_query(container, tail_lines, previous, follow=False),
            stream=True,
        )
        try:
            return response.data.decode("utf-8", errors="replace")
        finally:
            response.release_conn()

    def follow_pod_log(
        self,
        namespace: str,
        name: str,
        *,
        container: str = "",
        tail_lines: int | None = None,
        previous: bool = False,
        on_response: Callable[[object], None] | None = None,
    ) -> Iterator[str]:
        """Yield log lines as they are written, until the container ends or ``response.shutdown()``."""
        response = self._request(
            "GET",
            self._path("Pod", namespace, name) + "/log",
            query=self._log_query(container, tail_lines, previous, follow=True),
            timeout=(self.timeout[0], None),
            stream=True,
        )
        if on_response is not None:
            on_response(response)
        for line in _response_lines(response, with_tail=True):
            yield line.decode("utf-8", errors="replace")


def _response_lines(response, *, with_tail: bool) -> Iterator[bytes]:
    """The lines of a streamed answer as they arrive (a watch's events, a followed log); ``with_tail``
    also yields a last line without a newline. Transport failures become integration errors."""
    finished = False
    try:
        buffer = b""
        for chunk in response.stream(4096, decode_content=True):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                yield line
        finished = True
        if buffer and with_tail:
            yield buffer
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise error_from_transport(exc) from exc
    finally:
        if finished:
            response.release_conn()
        else:
            # Left mid-stream (stopped, shut down, broken): close the connection now, so the apiserver
            # ends the watch or log stream at once instead of at its timeout, and it is never reused.
            response.close()


def _status_error(status: dict) -> IntegrationError:
    exc = ApiException(status=status.get("code") or 500, reason=status.get("reason", ""))
    exc.body = json.dumps(status)
    return error_from_api_exception(exc)


def _timed_out(last: RolloutOutcome | None, timeout: float) -> RolloutOutcome:
    base = last or RolloutOutcome(Rollout.PROGRESSING)
    return RolloutOutcome(
        Rollout.TIMED_OUT,
        desired=base.desired,
        updated=base.updated,
        ready=base.ready,
        available=base.available,
        total=base.total,
        revision=base.revision,
        reason="Timeout",
        message=f"not complete after {timeout:.0f}s: {base.message}",
    )


def _pod_info(pod: dict) -> PodInfo:
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    containers = status.get("containerStatuses") or []
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    reason = ""
    for container in containers:
        state = container.get("state") or {}
        detail = state.get("waiting") or state.get("terminated") or {}
        if detail.get("reason"):
            reason = detail["reason"]
            break
    return PodInfo(
        name=meta.get("name", ""),
        phase=status.get("phase", "Unknown"),
        ready=conditions.get("Ready") == "True",
        restarts=sum(c.get("restartCount", 0) for c in containers),
        node_name=spec.get("nodeName", ""),
        pod_ip=status.get("podIP", ""),
        reason=reason or status.get("reason", ""),
        created_at=meta.get("creationTimestamp", ""),
        labels=meta.get("labels") or {},
        namespace=meta.get("namespace", ""),
        annotations=meta.get("annotations") or {},
        terminating=bool(meta.get("deletionTimestamp")),
    )
