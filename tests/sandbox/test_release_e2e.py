"""End to end: a Jenkins job clones the GitLab stand-in at a tag, compiles go-hello and builds it with buildah
from the portal's generic Go Dockerfile (go-hello has none of its own) on the sandbox's busybox base image,
pushes it to the real registry; the registry then serves the manifest by tag."""

from __future__ import annotations

import re
from pathlib import Path

import gitlab
import jenkins
import pytest
import requests

from deploys.recipes import DEFAULT_RECIPES, render_dockerfile
from sandbox.gitlab import GitLabStandin
from sandbox.images import ensure_base_images, ensure_prestop_helper
from sandbox.registry import RegistryServer
from tests.fixtures.standins import (
    DEMO_REPOS,
    GITLAB_TOKEN,
    freestyle_xml,
    require,
    require_go,
    require_tools,
    wait_for_build_number,
    wait_for_result,
)

pytestmark = pytest.mark.standins

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)

RELEASE_SHELL = """set -eu
rm -rf src
git clone --quiet --depth 1 --branch "$GIT_REF" "$REPO_URL" src
cd src
CGO_ENABLED=0 GOTOOLCHAIN=local "$GO" build -trimpath -ldflags "-s -w" -o bin/app .
printf '%s\\n' "$DOCKERFILE" > Dockerfile
"$BUILD_IMAGE" . "$IMAGE"
"""


def test_jenkins_builds_tag_and_pushes_image(
    gitlab_standin: GitLabStandin,
    jenkins_client: jenkins.Jenkins,
    registry_server: RegistryServer,
) -> None:
    require_tools("git", "buildah", "flock", "ldd")
    require_go()
    require(Path("/bin/busybox").is_file(), "busybox-static (/bin/busybox)")

    gitlab_standin.create_project("demo/go-hello", DEMO_REPOS / "go-hello")
    gl = gitlab.Gitlab(gitlab_standin.url, private_token=GITLAB_TOKEN)
    project = gl.projects.get("demo/go-hello")
    tag = project.tags.create({"tag_name": "v1.0.0", "ref": "main", "message": "release v1.0.0"})

    jenkins_client.create_job(
        "release-template",
        freestyle_xml(
            [RELEASE_SHELL], params={"GIT_REF": "main", "REPO_URL": "", "IMAGE": "", "DOCKERFILE": ""}
        ),
    )
    jenkins_client.copy_job("release-template", "go-hello-release")
    jenkins_client.reconfig_job("go-hello-release", jenkins_client.get_job_config("go-hello-release"))
    image = f"{registry_server.host}/demo/go-hello:v1.0.0"
    base = ensure_base_images(registry_server.host)["go"]
    dockerfile = render_dockerfile(
        DEFAULT_RECIPES["go"]["dockerfile"],
        project="go-hello",
        port=8080,
        base=base,
        prestop_helper=ensure_prestop_helper(registry_server.host),
    )
    queue_id = jenkins_client.build_job(
        "go-hello-release",
        {"GIT_REF": "v1.0.0", "REPO_URL": project.http_url_to_repo, "IMAGE": image, "DOCKERFILE": dockerfile},
    )
    number = wait_for_build_number(jenkins_client, queue_id)
    info = wait_for_result(jenkins_client, "go-hello-release", number, timeout=240)
    console = jenkins_client.get_build_console_output("go-hello-release", number)
    assert info["result"] == "SUCCESS", console[-3000:]
    pushed = re.search(rf"^pushed {re.escape(image)}@(sha256:[0-9a-f]{{64}})$", console, re.MULTILINE)
    assert pushed, console[-3000:]
    print(f"go-hello build+push took {info['duration']} ms")

    head = requests.head(
        f"{registry_server.url}/v2/demo/go-hello/manifests/v1.0.0",
        headers={"Accept": MANIFEST_ACCEPT},
        timeout=10,
    )
    assert head.status_code == 200
    assert head.headers["Docker-Content-Digest"] == pushed.group(1)

    manifest = requests.get(
        f"{registry_server.url}/v2/demo/go-hello/manifests/{pushed.group(1)}",
        headers={"Accept": MANIFEST_ACCEPT},
        timeout=10,
    ).json()
    config_blob = requests.get(
        f"{registry_server.url}/v2/demo/go-hello/blobs/{manifest['config']['digest']}", timeout=10
    ).json()
    assert config_blob["config"]["Entrypoint"] == ["/app/app"]  # the generic Go Dockerfile's
    assert config_blob["config"]["User"] == "65534:65534"
    assert config_blob["config"]["Labels"]["org.opencontainers.image.revision"] == tag.commit["id"]
    assert config_blob["architecture"] == "amd64" and config_blob["os"] == "linux"
    tags = requests.get(f"{registry_server.url}/v2/demo/go-hello/tags/list", timeout=10).json()
    assert tags == {"name": "demo/go-hello", "tags": ["v1.0.0"]}
