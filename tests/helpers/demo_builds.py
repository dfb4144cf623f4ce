"""Build a demo service the way a release builds it: its language's generic recipe through the Jenkins
stand-in, from a tag of its GitLab repository, pushed to the pipeline's registry."""

from __future__ import annotations

import time

from deploys import recipes
from deploys.recipes import BUILD_PARAMETERS, DEFAULT_RECIPES, RUN_MARKER
from integrations.gitlab import GitLabClient
from integrations.jenkins import JenkinsClient, render_freestyle_config
from sandbox.pipeline import GITLAB_TOKEN, JENKINS_TOKEN, JENKINS_USER, TEMPLATE_PREFIX
from sandbox.seed import DEMO_PROJECTS

PORT = 8080


def build_like_a_release(pipeline, name: str, version: str) -> tuple[str, str, float]:
    """Tag the demo's repository and run its language's recipe through Jenkins; (image, console, seconds)."""
    language = str(DEMO_PROJECTS[name][0])
    recipe = DEFAULT_RECIPES[language]
    repository = f"demo/{name}-build"
    pipeline.add_repository(repository, demo=name)
    gitlab = GitLabClient(pipeline.gitlab.url, GITLAB_TOKEN)
    gitlab.ensure_tag(repository, version, "main", f"release {version}")
    jenkins = JenkinsClient(pipeline.jenkins.url, JENKINS_USER, JENKINS_TOKEN)
    job = f"{name}-build"
    jenkins.ensure_job(
        job,
        f"{TEMPLATE_PREFIX}{language}",
        lambda xml: render_freestyle_config(
            xml, description=name, parameters=[(p, "") for p in BUILD_PARAMETERS], shell=recipe["build_shell"]
        ),
    )
    image = f"{pipeline.registry.host}/demo/{name}:{version}"
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
