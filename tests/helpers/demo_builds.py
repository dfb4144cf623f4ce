"""Build a demo service the way a release builds it: its language's generic recipe through the Jenkins
stand-in, from a tag of its GitLab repository, pushed to the pipeline's registry."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time

import requests

from deploys import recipes
from deploys.recipes import BUILD_PARAMETERS, DEFAULT_RECIPES, RUN_MARKER
from integrations.gitlab import GitLabClient
from integrations.jenkins import JenkinsClient, render_freestyle_config
from sandbox.pipeline import GITLAB_TOKEN, JENKINS_TOKEN, JENKINS_USER, TEMPLATE_PREFIX
from sandbox.seed import DEMO_PROJECTS

PORT = 8080
MANIFEST_ACCEPT = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
)


def inspect_config(image: str) -> dict:
    done = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--config", f"docker://{image}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def last_layer_files(registry_url: str, repository: str, digest: str) -> set[str]:
    manifest = requests.get(
        f"{registry_url}/v2/{repository}/manifests/{digest}", headers={"Accept": MANIFEST_ACCEPT}, timeout=10
    ).json()
    blob = requests.get(
        f"{registry_url}/v2/{repository}/blobs/{manifest['layers'][-1]['digest']}", timeout=60
    )
    with tarfile.open(fileobj=io.BytesIO(blob.content)) as layer:
        return {name.lstrip("./") for name in layer.getnames()}


def build_like_a_release(pipeline, name: str, version: str) -> tuple[str, str, float]:
    """Tag the demo's repository and run its language's recipe through Jenkins; (image, console, seconds)."""
    repository = f"demo/{name}-build"
    pipeline.add_repository(repository, demo=name)
    image = f"{pipeline.registry.host}/demo/{name}:{version}"
    return build_with_recipe(
        pipeline, repository, str(DEMO_PROJECTS[name][0]), version, image, job=f"{name}-build"
    )


def build_with_recipe(
    pipeline, repository: str, language: str, version: str, image: str, *, job: str
) -> tuple[str, str, float]:
    """Tag ``repository`` (a GitLab stand-in project) at ``version`` and build it with ``language``'s default
    recipe through Jenkins, as the portal's release does, into ``image``; (image, console, seconds)."""
    recipe = DEFAULT_RECIPES[language]
    name = repository.rsplit("/", 1)[-1]
    gitlab = GitLabClient(pipeline.gitlab.url, GITLAB_TOKEN)
    gitlab.ensure_tag(repository, version, "main", f"release {version}")
    jenkins = JenkinsClient(pipeline.jenkins.url, JENKINS_USER, JENKINS_TOKEN)
    jenkins.ensure_job(
        job,
        f"{TEMPLATE_PREFIX}{language}",
        lambda xml: render_freestyle_config(
            xml, description=name, parameters=[(p, "") for p in BUILD_PARAMETERS], shell=recipe["build_shell"]
        ),
    )
    base = pipeline.base_images[language]
    started = time.monotonic()
    queue_id = jenkins.trigger(
        job,
        {
            "GIT_URL": gitlab.project(repository).http_url_to_repo,
            "GIT_TAG": version,
            "IMAGE": image,
            "DOCKERFILE": recipes.render_dockerfile(
                recipe["dockerfile"],
                project=name,
                port=PORT,
                base=base,
                prestop_helper=pipeline.prestop_helper_image,
            ),
            "APP_PORT": str(PORT),
            RUN_MARKER: f"{name}-{version}",
        },
    )
    number = jenkins.wait_for_queue(queue_id, timeout=60)
    deadline = time.monotonic() + 600
    while (info := jenkins.build_info(job, number)).building:
        assert time.monotonic() < deadline, f"{job} #{number} still building"
        time.sleep(0.5)
    seconds = time.monotonic() - started
    console = jenkins.console_chunk(job, number).text
    assert info.succeeded, console[-4000:]
    return image, console, seconds
