"""Language build recipes: a generic Dockerfile template and a Jenkins build shell per language.

The build shell never has a value pasted into it. Everything that varies per release reaches it as a
Jenkins build parameter (an environment variable) and is only ever used quoted ("$GIT_TAG"), so a
branch or project name with shell metacharacters can never execute anything. The Dockerfile template
is filled in by the portal with validated values and handed over the same way ($DOCKERFILE).
"""

import re

from django.conf import settings
from django.utils.translation import gettext as _

# Parameters of every build; the Jenkins job defines them and the shell reads them from its environment.
BUILD_PARAMETERS = ("GIT_URL", "GIT_TAG", "IMAGE", "DOCKERFILE", "APP_PORT", "OPSPORTAL_RUN")
RUN_MARKER = "OPSPORTAL_RUN"

_CHECKOUT = """set -euo pipefail
echo "==> Checking out $GIT_TAG"
rm -rf src
git clone --quiet --depth 1 --branch "$GIT_TAG" -- "$GIT_URL" src
cd src
"""
_PACKAGE = """printf '%s\\n' "$DOCKERFILE" > Dockerfile
echo "==> Building and pushing $IMAGE"
"${IMAGE_BUILDER:?the build agent must set IMAGE_BUILDER (build CONTEXT and push IMAGE)}" . "$IMAGE"
"""
# The build agent fetches a Python service's requirements as wheels; where from is the agent's pip
# configuration (PIP_INDEX_URL, or PIP_NO_INDEX with PIP_FIND_LINKS naming a wheelhouse, as the sandbox agent
# has), so the image build itself needs no index. `pip wheel` also builds a wheel for a requirement that only
# has sources.
_PYTHON_WHEELS = """mkdir -p wheels
if [ -f requirements.txt ]; then
  echo "==> Fetching the requirements as wheels"
  python3 -m pip wheel --disable-pip-version-check --progress-bar off \\
    --wheel-dir wheels --requirement requirements.txt
fi
"""
# ...and the Dockerfile installs them with the base image's own interpreter and pip, offline, in a stage of
# its own: the final image gets the installed packages and the sources, not the wheels.
PYTHON_DEPS = "opsportal-deps"
PYTHON_DEPS_STAGE = f"""FROM {{{{ base_image }}}} AS {PYTHON_DEPS}
WORKDIR /app
COPY . .
RUN mkdir -p /opt/deps && if [ -f requirements.txt ]; then \\
      python -m pip install --no-index --find-links wheels --no-cache-dir --disable-pip-version-check \\
        --root-user-action=ignore \\
        --target /opt/deps --requirement requirements.txt; \\
    fi && rm -rf wheels
"""
# Every generic Dockerfile starts with the preStop helper's stage and copies its static HTTP client, so the
# hook can set the Eureka status override in images that have neither curl nor wget (deploys/prestop).
PRESTOP_STAGE = "opsportal-prestop"


def _generic(rest: str, *, stages: str = "") -> str:
    """The helper's stage first, then any build ``stages`` of the recipe's own, then the final stage."""
    return (
        f"FROM {{{{ prestop_helper_image }}}} AS {PRESTOP_STAGE}\n" + stages + "FROM {{ base_image }}\n"
        f"COPY --from={PRESTOP_STAGE} /opt/opsportal/bin/http-post /opt/opsportal/bin/http-post\n" + rest
    )


DEFAULT_RECIPES: dict[str, dict[str, str]] = {
    "go": {
        "build_shell": _CHECKOUT
        + """echo "==> Compiling"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/app .
"""
        + _PACKAGE,
        "dockerfile": _generic(
            """COPY bin/app /app/app
EXPOSE {{ port }}
USER 65534:65534
ENTRYPOINT ["/app/app"]
"""
        ),
    },
    "java": {
        "build_shell": _CHECKOUT
        + """echo "==> Packaging with Maven"
mvn -B -q -DskipTests package
cp "$(ls target/*.jar | grep -v -e '-sources' -e '-javadoc' | head -n 1)" app.jar
"""
        + _PACKAGE,
        "dockerfile": _generic(
            """COPY app.jar /app/app.jar
EXPOSE {{ port }}
USER 65534:65534
# JAVA_TOOL_OPTIONS comes from the Deployment: heap and CPU count follow the container's limits.
ENTRYPOINT ["java", "-jar", "/app/app.jar"]
"""
        ),
    },
    "python": {
        "build_shell": _CHECKOUT + _PYTHON_WHEELS + _PACKAGE,
        "dockerfile": _generic(
            f"""COPY --from={PYTHON_DEPS} /opt/deps /opt/deps
COPY --from={PYTHON_DEPS} /app /app
WORKDIR /app
ENV PYTHONPATH=/opt/deps PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
EXPOSE {{{{ port }}}}
USER 65534:65534
CMD ["python", "-m", "gunicorn", "--bind", "0.0.0.0:{{{{ port }}}}", "app:app"]
""",
            stages=PYTHON_DEPS_STAGE,
        ),
    },
    "php": {
        "build_shell": _CHECKOUT
        + """if [ -f composer.json ]; then
  composer install --no-dev --no-interaction --optimize-autoloader
fi
"""
        + _PACKAGE,
        "dockerfile": _generic(
            """COPY . /var/www/html/
EXPOSE {{ port }}
"""
        ),
    },
    "node": {
        "build_shell": _CHECKOUT
        + """npm ci --omit=dev
"""
        + _PACKAGE,
        "dockerfile": _generic(
            """WORKDIR /app
COPY . .
EXPOSE {{ port }}
USER 65534:65534
CMD ["node", "server.js"]
"""
        ),
    },
}

_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
ALLOWED_PLACEHOLDERS = frozenset({"base_image", "port", "project", "prestop_helper_image"})
_IMAGE_REF = re.compile(r"^[A-Za-z0-9.:-]+(/[a-z0-9._-]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$")


def template_job(language: str) -> str:
    return f"{settings.JENKINS_TEMPLATE_PREFIX}{language}"


def base_image(language: str) -> str:
    return settings.OPSPORTAL_BASE_IMAGES.get(language, settings.OPSPORTAL_BASE_IMAGES.get("default", ""))


def prestop_helper_image() -> str:
    return settings.OPSPORTAL_PRESTOP_HELPER_IMAGE


def dockerfile_errors(text: str) -> list[str]:
    unknown = sorted({m[1] for m in _PLACEHOLDER.finditer(text)} - ALLOWED_PLACEHOLDERS)
    errors = []
    if unknown:
        errors.append(
            _("Unknown placeholders: %(names)s. Allowed: %(allowed)s.")
            % {"names": ", ".join(unknown), "allowed": ", ".join(sorted(ALLOWED_PLACEHOLDERS))}
        )
    if not re.search(r"^\s*FROM\s", text, re.M | re.I):
        errors.append(_("A Dockerfile needs a FROM line."))
    return errors


def build_shell_errors(text: str) -> list[str]:
    errors = []
    if "IMAGE" not in text or "GIT_TAG" not in text:
        errors.append(_("The build shell must use $GIT_TAG and $IMAGE (they arrive as build parameters)."))
    if "{{" in text:
        errors.append(
            _("The build shell takes no placeholders: use the build parameters %(names)s.")
            % {"names": ", ".join(f"${p}" for p in BUILD_PARAMETERS)}
        )
    return errors


def render_dockerfile(text: str, *, project: str, port: int, base: str, prestop_helper: str = "") -> str:
    if not _IMAGE_REF.match(base):
        raise ValueError(f"base image {base!r} is not an image reference")
    used = {m[1] for m in _PLACEHOLDER.finditer(text)}
    if "prestop_helper_image" in used and not _IMAGE_REF.match(prestop_helper):
        raise ValueError(
            f"preStop helper image {prestop_helper!r} is not an image reference "
            "(set OPSPORTAL_PRESTOP_HELPER_IMAGE)"
        )
    values = {
        "base_image": base,
        "port": str(int(port)),
        "project": project,
        "prestop_helper_image": prestop_helper,
    }
    return _PLACEHOLDER.sub(lambda m: values[m[1]], text)
