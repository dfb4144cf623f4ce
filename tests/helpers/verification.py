"""go-hello changes through the whole pipeline, and traffic to its pods: what the verification and the
alerting acceptance tests share."""

from __future__ import annotations

import subprocess
import threading

import requests

from clusters.models import ProjectEnvironment
from deploys import services as deploy_services
from deploys.choices import ReleaseStatus
from deploys.models import Release
from deploys.tasks import release_build, release_deploy, release_tag
from integrations.kubernetes.client import KubeClient
from sandbox.kube import podnet
from tests.fixtures.pipeline import onboard, run_release_task

# The line of go-hello's source that sets its error-ratio default, before and after a bad commit.
GOOD_LINE = 'defaultErrorRatio     = "0"'
BAD_LINE = 'defaultErrorRatio     = "0.3"'


class PodTraffic:
    """Sends GET / to every ready pod of the environment, a few times a second, from a thread. The pods
    are listed from the cluster each round, so the traffic follows a rollout; a pod address is used only
    when the host routes it through the sandbox's bridge."""

    def __init__(self, env: ProjectEnvironment, port: int) -> None:
        self.env, self.port = env, port
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _addresses(self, kube: KubeClient) -> list[str]:
        pods = kube.list_pods(self.env.namespace)
        ready = [p.pod_ip for p in pods if p.ready and not p.terminating and p.pod_ip]
        return [ip for ip in ready if (podnet.route_device(ip) or "").startswith("opsbr")]

    def _loop(self) -> None:
        with KubeClient.from_cluster(self.env.cluster) as kube, requests.Session() as session:
            while not self._stop.is_set():
                try:
                    addresses = self._addresses(kube)
                except Exception:  # noqa: BLE001 (the apiserver busy a moment: next round)
                    addresses = []
                for _ in range(5):
                    for ip in addresses:
                        try:
                            session.get(f"http://{ip}:{self.port}/", timeout=2)
                            self.sent += 1
                        except requests.RequestException:
                            pass  # a pod going away in a rollout
                    self._stop.wait(0.1)

    def start(self) -> PodTraffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():  # a test that failed before start() keeps its own error
            self._thread.join(timeout=30)


def commit_change(pipeline, repository: str, work, old: str, new: str) -> None:
    """A developer's commit on main in the GitLab stand-in: the error-ratio default changes."""
    bare = pipeline.gitlab.find_project(repository).bare
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True)
    source = work / "main.go"
    text = source.read_text()
    assert text.count(old) == 1
    source.write_text(text.replace(old, new))
    git = ["git", "-C", str(work), "-c", "user.name=Dev", "-c", "user.email=dev@example.test"]
    subprocess.run([*git, "commit", "-qam", f"Error ratio default: {new.split()[-1]}"], check=True)
    subprocess.run([*git, "push", "-q", "origin", "HEAD:main"], check=True)


def release_through_pipeline(people, project) -> Release:
    release = deploy_services.release_submit(actor=people.developer, project=project, branch="main")
    for task in (release_tag, release_build, release_deploy):
        release = run_release_task(task, release)
    assert release.status == ReleaseStatus.DEPLOYED, release.error
    return release


def onboard_go_hello(people, pipeline, cluster, **project_fields) -> ProjectEnvironment:
    """The people fixture's project as go-hello (its own repository in the pipeline's GitLab, with
    ``project_fields`` set), onboarded to ``cluster``; returns its environment there."""
    project = people.project
    project.language = "go"
    project.gitlab_repository = f"demo/go-hello-{project.pk}"
    for name, value in project_fields.items():
        setattr(project, name, value)
    project.save()
    pipeline.add_repository(project.gitlab_repository, demo="go-hello")
    onboard(people, cluster)
    return ProjectEnvironment.objects.select_related("cluster").get(
        project=project, environment=cluster.environment
    )
