"""The release pipeline's sandbox: the GitLab and Jenkins stand-ins and the real registry, wired the way
the portal expects a company's servers (template jobs per language, a demo repository).

Used by `make run` and by the tests; `settings()` gives the environment the portal reads.
"""

import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

from deploys.recipes import DEFAULT_RECIPES
from sandbox.gitlab import GitLabStandin
from sandbox.images import ensure_base_images, ensure_prestop_helper
from sandbox.jenkins import JenkinsStandin
from sandbox.procs import free_port, port_free
from sandbox.registry import RegistryServer
from sandbox.wheelhouse import agent_env as wheelhouse_env

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_REPOS = REPO_ROOT / "sandbox" / "demo_repos"
IMAGE_BUILDER = REPO_ROOT / "sandbox" / "jenkins" / "build_image.sh"
# The log proxy's package; in the GitLab stand-in as a project of its own, so the portal tags and builds it
# with the python recipe like any service.
LOGPROXY_PACKAGE = REPO_ROOT / "logproxy"
LOGPROXY_REPOSITORY = "ops/logproxy"
GITLAB_TOKEN = "glpat-sandbox-token"  # noqa: S105 - a local stand-in's fixed token
JENKINS_USER = "opsportal"
JENKINS_TOKEN = "11sandboxapitoken"  # noqa: S105
TEMPLATE_PREFIX = "opsportal-template-"
# How long a restart waits for the previous run's server to let go of a port before choosing another.
PORT_RELEASE_WAIT_SECONDS = 10.0

_TEMPLATE_JOB = """<?xml version='1.1' encoding='UTF-8'?>
<project>
  <description>{description}</description>
  <keepDependencies>false</keepDependencies>
  <properties/>
  <scm class="hudson.scm.NullSCM"/>
  <canRoam>true</canRoam>
  <disabled>false</disabled>
  <blockBuildWhenDownstreamBuilding>false</blockBuildWhenDownstreamBuilding>
  <blockBuildWhenUpstreamBuilding>false</blockBuildWhenUpstreamBuilding>
  <triggers/>
  <concurrentBuild>false</concurrentBuild>
  <builders>
    <hudson.tasks.Shell><command>echo "OpsPortal template"</command></hudson.tasks.Shell>
  </builders>
  <publishers/>
  <buildWrappers/>
</project>
"""


class SandboxPipeline:
    def __init__(self, root: Path, *, buildah_root: Path | None = None, quiet_period: float = 0.2) -> None:
        self.root = Path(root)
        # language -> base image in this pipeline's registry (OPSPORTAL_BASE_IMAGES), set by start()
        self.base_images: dict[str, str] = {}
        # the preStop helper image the generic Dockerfiles copy from (OPSPORTAL_PRESTOP_HELPER_IMAGE)
        self.prestop_helper_image = ""
        self.gitlab = GitLabStandin(self.root / "gitlab", GITLAB_TOKEN)
        self.registry = RegistryServer(self.root / "registry")
        go = shutil.which("go") or "/usr/local/go/bin/go"
        python_bin = self._agent_python()
        self.jenkins = JenkinsStandin(
            self.root / "jenkins",
            JENKINS_USER,
            JENKINS_TOKEN,
            quiet_period=quiet_period,
            extra_env={
                # What a real build agent provides: the image build-and-push command and the tool chain.
                "IMAGE_BUILDER": str(IMAGE_BUILDER),
                "SANDBOX_BUILDAH_ROOT": str(buildah_root or self.root / "buildah"),
                # The recipes' tools: go (the go recipe), mvn (java), python3 (python: the interpreter the
                # python base image copies, so the wheels it picks fit the image); php needs none without
                # composer.json.
                "PATH": f"{python_bin}:{Path(go).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                # The python recipe's `pip wheel` reads the local wheelhouse only (sandbox/wheelhouse).
                **wheelhouse_env(),
                "GOTOOLCHAIN": "local",
                # Go needs a build cache directory; a stand-in started without HOME would fail without it.
                **({} if os.environ.get("HOME") else {"GOCACHE": str(self.root / "go-build")}),
            },
        )

    def _agent_python(self) -> Path:
        """A directory whose python3 is the interpreter this sandbox runs on (its base, not the venv), and
        nothing else: putting the interpreter's own bin/ on PATH would shadow the agent's other tools."""
        bin_dir = self.root / "agent-bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        link = bin_dir / "python3"
        target = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
        if not link.is_symlink() or link.readlink() != target:
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        return bin_dir

    @property
    def ports_file(self) -> Path:
        return self.root / "ports.json"

    def _sticky_ports(self) -> dict[str, int]:
        """The ports the previous start used, each kept when it is (or soon becomes) free.

        The portal, its queued tasks and running builds hold these URLs (a build pushes to REGISTRY_HOST
        it was given), so a restart that moved them would fail the builds in flight."""
        try:
            saved = json.loads(self.ports_file.read_text())
        except (OSError, ValueError):
            return {}
        ports = {}
        for name, port in saved.items():
            deadline = time.monotonic() + PORT_RELEASE_WAIT_SECONDS
            while not port_free(port) and time.monotonic() < deadline:
                time.sleep(0.2)
            if port_free(port):
                ports[name] = port
            else:
                ports[name] = free_port()
                logger.warning(
                    "sandbox %s: port %s is still taken; using %s (work in flight on the old port fails)",
                    name,
                    port,
                    ports[name],
                )
        return ports

    def start(self) -> "SandboxPipeline":
        ports = self._sticky_ports()
        self.gitlab._port = ports.get("gitlab", self.gitlab._port)
        self.registry.port = ports.get("registry", self.registry.port)
        self.jenkins._port = ports.get("jenkins", self.jenkins._port)
        self.gitlab.start()
        self.registry.start()
        self.jenkins.start()
        self.root.mkdir(parents=True, exist_ok=True)
        # Nothing can be pulled here: the generic Dockerfiles start FROM images made from this machine's
        # packages (sandbox/images), pushed to this registry before any build needs them.
        self.base_images = ensure_base_images(self.registry.host)
        self.prestop_helper_image = ensure_prestop_helper(self.registry.host)
        self.ports_file.write_text(json.dumps(self.ports(), indent=1) + "\n")
        for language in DEFAULT_RECIPES:
            name = f"{TEMPLATE_PREFIX}{language}"
            if name not in self.jenkins.jobs:
                self.jenkins.create_job(
                    name, _TEMPLATE_JOB.format(description=escape(f"{language} template"))
                )
        return self

    def ports(self) -> dict[str, int]:
        return {
            "gitlab": int(self.gitlab.url.rstrip("/").rsplit(":", 1)[1]),
            "registry": self.registry.port,
            "jenkins": int(self.jenkins.url.rstrip("/").rsplit(":", 1)[1]),
        }

    def stop(self) -> None:
        for server in (self.jenkins, self.registry, self.gitlab):
            server.stop()

    def add_repository(self, path: str, demo: str = "go-hello") -> None:
        """A GitLab project holding one of the demo repositories (kept if it exists)."""
        if self.gitlab.find_project(path) is None:
            self.gitlab.create_project(path, DEMO_REPOS / demo)

    def add_python_package(self, path: str, package: Path) -> None:
        """A GitLab project holding a Python package of this repository as a service of its own: the package
        directory and, at the root, its requirements.txt (what the python recipe installs), so that
        `python -m <package>` runs it from /app. Kept in step with the sources: a changed package is a new
        commit on its default branch."""
        with tempfile.TemporaryDirectory(prefix="python-package-") as tmp:
            tree = Path(tmp) / "tree"
            shutil.copytree(
                package, tree / package.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
            requirements = package / "requirements.txt"
            if requirements.is_file():
                shutil.copyfile(requirements, tree / "requirements.txt")
            self.gitlab.sync_project(path, tree, message=f"{package.name} from the OpsPortal repository")

    def add_logproxy(self) -> str:
        """The log proxy's repository (``ops/logproxy``); its path."""
        self.add_python_package(LOGPROXY_REPOSITORY, LOGPROXY_PACKAGE)
        return LOGPROXY_REPOSITORY

    def settings(self) -> dict[str, str]:
        return {
            "GITLAB_URL": self.gitlab.url,
            "GITLAB_TOKEN": GITLAB_TOKEN,
            "JENKINS_URL": self.jenkins.url,
            "JENKINS_USER": JENKINS_USER,
            "JENKINS_TOKEN": JENKINS_TOKEN,
            "JENKINS_TEMPLATE_PREFIX": TEMPLATE_PREFIX,
            "REGISTRY_URL": self.registry.url,
            "REGISTRY_HOST": self.registry.host,
            "OPSPORTAL_BASE_IMAGES": json.dumps(self.base_images),
            "OPSPORTAL_PRESTOP_HELPER_IMAGE": self.prestop_helper_image,
        }
