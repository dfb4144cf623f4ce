"""KubeClient against the real local control plane (sandbox/kube); no mocks."""

import pytest

from integrations.errors import Invalid, NotFound, Unauthorized, Unreachable
from integrations.kubernetes import KubeClient, KubeconfigError, Rollout, parse_kubeconfig
from sandbox.kube.cluster import free_port
from tests.integrations.kube_helpers import ca_pem, inline_kubeconfig, service_account_token

pytestmark = pytest.mark.kube


@pytest.fixture
def kube(kube_cluster):
    with KubeClient.from_kubeconfig_text(inline_kubeconfig(kube_cluster.kubeconfig)) as client:
        yield client


def deployment(namespace, name, replicas=2, **spec):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.local/web:1"}]},
            },
            **spec,
        },
    }


def test_server_version_and_whoami_with_client_certificate(kube):
    assert kube.server_version().git_version.startswith("v1.")
    assert kube.whoami() == "admin"


def test_token_auth_works_and_a_bad_token_is_unauthorized(kube_cluster, kube_namespace):
    token = service_account_token(kube_cluster.api_client, kube_namespace)
    ca = ca_pem(kube_cluster.kubeconfig)
    with KubeClient.from_token(kube_cluster.cluster.server, token, ca) as kube:
        assert kube.whoami() == f"system:serviceaccount:{kube_namespace}:portal"
        applied = kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": kube_namespace},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
            }
        )
        assert applied["spec"]["clusterIP"]
        with pytest.raises(Unauthorized):  # the role binding covers only its own namespace
            kube.get("Deployment", "default", "anything")
    with KubeClient.from_token(kube_cluster.cluster.server, "not-a-valid-token", ca) as kube:
        with pytest.raises(Unauthorized) as caught:
            kube.whoami()
        assert caught.value.status == 401
        assert caught.value.permanent


def test_wrong_ca_is_a_permanent_tls_failure(kube_cluster):
    with KubeClient.from_token(kube_cluster.cluster.server, "t") as kube:  # system roots only
        with pytest.raises(Unreachable) as caught:
            kube.server_version()
    assert caught.value.permanent
    assert "certificate" in caught.value.cause.lower()


def test_dead_port_is_unreachable_and_transient():
    with KubeClient.from_token(f"https://127.0.0.1:{free_port()}", "t", verify_tls=False) as kube:
        with pytest.raises(Unreachable) as caught:
            kube.server_version()
    assert not caught.value.permanent
    assert "refused" in caught.value.cause.lower()


def test_apply_is_idempotent_and_get_returns_the_object(kube, kube_namespace):
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": kube_namespace},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    first = kube.apply(service)
    second = kube.apply(service)
    assert first["metadata"]["resourceVersion"] == second["metadata"]["resourceVersion"]
    assert first["metadata"]["managedFields"][0]["manager"] == "opsportal"

    # A Deployment's status keeps changing under the controller; its spec generation must not.
    body = deployment(kube_namespace, "web")
    applied = kube.apply(body)
    again = kube.apply(body)
    assert again["metadata"]["generation"] == applied["metadata"]["generation"] == 1
    stored = kube.get("Deployment", kube_namespace, "web")
    assert stored["metadata"]["uid"] == applied["metadata"]["uid"]
    assert kube.get("Deployment", kube_namespace, "missing") is None


def test_apply_every_supported_kind(kube, kube_namespace):
    ns = kube_namespace
    kube.ensure_namespace(ns, {"opsportal.io/project": "orders"})
    assert kube.get("Namespace", None, ns)["metadata"]["labels"]["opsportal.io/project"] == "orders"
    kube.apply(deployment(ns, "web"))
    kube.apply(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 5,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 70},
                        },
                    }
                ],
            },
        }
    )
    kube.apply(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}},
        }
    )
    assert kube.get("HorizontalPodAutoscaler", ns, "web")["spec"]["maxReplicas"] == 5
    assert kube.get("PodDisruptionBudget", ns, "web")["spec"]["minAvailable"] == 1


def test_dry_run_previews_without_writing(kube, kube_namespace):
    preview = kube.apply_dry_run(deployment(kube_namespace, "preview", replicas=4))
    assert preview["spec"]["replicas"] == 4
    assert kube.get("Deployment", kube_namespace, "preview") is None


def test_invalid_quantity_is_invalid_with_the_apiservers_causes(kube, kube_namespace):
    body = deployment(kube_namespace, "bad")
    body["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1 core"}}
    with pytest.raises(Invalid) as caught:
        kube.apply(body)
    error = caught.value
    assert error.permanent
    assert error.status == 422
    assert "quantities must match the regular expression" in error.causes[0]["message"]
    assert kube.get("Deployment", kube_namespace, "bad") is None


def test_selector_mismatch_422_lists_field_causes(kube, kube_namespace):
    body = deployment(kube_namespace, "mismatch")
    body["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(Invalid) as caught:
        kube.apply(body)
    assert caught.value.status == 422
    assert {"field": "spec.template.metadata.labels"}.items() <= caught.value.causes[0].items()


def test_wait_for_healthy_deployment_completes_with_progress(kube, kube_namespace):
    kube.apply(deployment(kube_namespace, "web", replicas=3))
    seen = []
    outcome = kube.wait_for_deployment(kube_namespace, "web", timeout=90, on_progress=seen.append)
    assert outcome.state == Rollout.COMPLETE, outcome
    assert (outcome.desired, outcome.updated, outcome.ready, outcome.available) == (3, 3, 3, 3)
    assert seen and seen[-1] == outcome
    pods = kube.list_pods(kube_namespace, "app=web")
    assert len(pods) == 3
    assert all(p.phase == "Running" and p.ready and p.node_name.startswith("kwok-node") for p in pods)


def test_wait_for_impossible_deployment_fails_fast_with_the_reason(kube, kube_namespace):
    body = deployment(kube_namespace, "stuck", replicas=1, progressDeadlineSeconds=2)
    body["spec"]["template"]["spec"]["nodeSelector"] = {"no-such-label": "anywhere"}
    kube.apply(body)
    outcome = kube.wait_for_deployment(kube_namespace, "stuck", timeout=90)
    assert outcome.state == Rollout.FAILED
    assert outcome.reason == "ProgressDeadlineExceeded"
    assert "progress" in outcome.message.lower()
    assert outcome.available == 0
    pods = kube.list_pods(kube_namespace, "app=stuck")
    assert [p.phase for p in pods] == ["Pending"]


def test_wait_times_out_with_counts(kube, kube_namespace):
    body = deployment(kube_namespace, "slow", replicas=1)  # default deadline: 600s
    body["spec"]["template"]["spec"]["nodeSelector"] = {"no-such-label": "anywhere"}
    kube.apply(body)
    outcome = kube.wait_for_deployment(kube_namespace, "slow", timeout=3)
    assert outcome.state == Rollout.TIMED_OUT
    assert outcome.available == 0


def test_wait_for_missing_deployment_is_not_found(kube, kube_namespace):
    with pytest.raises(NotFound):
        kube.wait_for_deployment(kube_namespace, "ghost", timeout=5)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a: [b", "not valid YAML"),
        ("kind: Config", "not a kubeconfig"),
        (
            "clusters: [{name: c, cluster: {server: 'https://x', certificate-authority: /etc/ca.crt}}]\n"
            "contexts: [{name: x, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]",
            "refers to a file",
        ),
        (
            "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
            "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
            "users: [{name: u, user: {exec: {command: /bin/sh}}}]",
            "exec credential plugins are not supported",
        ),
        (
            "clusters: [{name: c, cluster: {server: 'ftp://x'}}]\n"
            "contexts: [{name: x, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]",
            "not an http(s) URL",
        ),
    ],
)
def test_unusable_kubeconfigs_are_refused_with_the_reason(text, reason):
    with pytest.raises(KubeconfigError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        parse_kubeconfig(text)
