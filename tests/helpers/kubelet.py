"""Writing what a kubelet writes, on the real apiserver: a crash-looping or OOMKilled container's status
(through the pod's status subresource) and the Warning events that go with it (through the core API).

kwok marks the portal's pods Running once; after that it leaves a status written here alone, so the
portal reads exactly what it would read from a real node."""

from __future__ import annotations

import datetime as dt

from kubernetes import client as k8s

from clusters.workload import manifests


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def crash_loop_status(
    pod: k8s.V1Pod,
    *,
    restarts: int = 3,
    exit_code: int = 143,
    reason: str = "Error",
    message: str = "",
) -> dict:
    """The status of a pod whose container keeps dying: waiting in CrashLoopBackOff, last terminated
    with ``reason``/``exit_code``, not ready."""
    name = pod.metadata.name
    started = pod.status.start_time.strftime("%Y-%m-%dT%H:%M:%SZ") if pod.status.start_time else _now()
    waiting_message = (
        message or f"back-off 40s restarting failed container={manifests.CONTAINER_NAME} pod={name}"
    )
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "ContainersNotReady",
                "lastTransitionTime": _now(),
            },
            {
                "type": "ContainersReady",
                "status": "False",
                "reason": "ContainersNotReady",
                "lastTransitionTime": _now(),
            },
        ],
        "containerStatuses": [
            {
                "name": manifests.CONTAINER_NAME,
                "image": pod.spec.containers[0].image,
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": restarts,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": waiting_message}},
                "lastState": {
                    "terminated": {
                        "reason": reason,
                        "exitCode": exit_code,
                        "startedAt": started,
                        "finishedAt": _now(),
                    }
                },
            }
        ],
    }


def patch_status(kube_cluster, namespace: str, name: str, status: dict) -> k8s.V1Pod:
    core = k8s.CoreV1Api(kube_cluster.api_client)
    return core.patch_namespaced_pod_status(name, namespace, {"status": status})


def warning_event(kube_cluster, namespace: str, pod: str, *, reason: str, message: str, count: int) -> None:
    """A Warning event about ``pod`` as the kubelet records it (a repeated one carries a count)."""
    core = k8s.CoreV1Api(kube_cluster.api_client)
    now = dt.datetime.now(dt.UTC)
    core.create_namespaced_event(
        namespace,
        k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(generate_name=f"{pod}."),
            involved_object=k8s.V1ObjectReference(kind="Pod", name=pod, namespace=namespace),
            reason=reason,
            message=message,
            type="Warning",
            count=count,
            first_timestamp=now,
            last_timestamp=now,
            source=k8s.V1EventSource(component="kubelet", host="kwok-node-0"),
        ),
    )
