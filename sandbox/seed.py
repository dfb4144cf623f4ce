"""Demo data for `make run`: users ops, dev, qa, admin and one demo project per language the sandbox builds
(their repositories are sandbox/demo_repos/<name>, in the GitLab stand-in as demo/<name>). Idempotent."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from projects import services as project_services
from projects.choices import OPS_GROUP, QA_GROUP, Language, Role
from projects.models import Project

DEMO_USERS = {
    # username: (groups, superuser)
    "admin": ((OPS_GROUP,), True),
    "ops": ((OPS_GROUP,), False),
    "dev": ((), False),
    "qa": ((QA_GROUP,), False),
}
# name -> (language, description); each is built by its language's generic recipe (no Dockerfile of its own).
DEMO_PROJECTS = {
    "go-hello": (
        Language.GO,
        "Demo Go service: /healthz, Prometheus metrics on /metrics, a JSON log line per request.",
    ),
    "java-hello": (
        Language.JAVA,
        "Demo Java 17 service (Maven): /actuator/health, /actuator/prometheus; takes STARTUP_DELAY_SECONDS "
        "(default 40) to start, as Spring Boot did; SLOW_HEALTH=true makes health answer in 1.5 s.",
    ),
    "php-hello": (
        Language.PHP,
        "Demo PHP service (PHP's built-in server): /healthz, /metrics, a JSON log line per request.",
    ),
}


def demo_repository(name: str) -> str:
    return f"demo/{name}"


@transaction.atomic
def seed_demo() -> dict[str, str]:
    """Create what is missing; return the passwords of users created now (shown once)."""
    User = get_user_model()
    created: dict[str, str] = {}
    users = {}
    for username, (groups, superuser) in DEMO_USERS.items():
        user = User.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(9)
            user = User.objects.create_user(
                username=username, password=password, is_superuser=superuser, is_staff=superuser
            )
            user.groups.set(Group.objects.filter(name__in=groups))
            created[username] = password
        users[username] = user
    for name, (language, description) in DEMO_PROJECTS.items():
        if Project.objects.filter(name=name).exists():
            continue
        project = project_services.project_create(
            actor=users["admin"],
            name=name,
            owner=users["dev"],
            description=description,
            language=language,
            gitlab_repository=demo_repository(name),
        )
        project_services.member_set(actor=users["admin"], project=project, user=users["qa"], role=Role.TESTER)
    return created


@transaction.atomic
def seed_apollo_settings(*, token: str, envs: dict[str, str]) -> list[str]:
    """Point every demo project without Apollo settings at its app on the Apollo stand-in (app id = the
    project's name, namespace ``application``, ``envs`` test/prod → Apollo env) with the stand-in's token.
    Settings a person saved are left alone. Returns the projects set up now."""
    from configs.models import ApolloSettings
    from configs.services import apollo_settings_update

    admin = get_user_model().objects.get(username="admin")
    done = []
    for project in Project.objects.filter(name__in=DEMO_PROJECTS):
        if ApolloSettings.objects.filter(project=project).exists():
            continue
        apollo_settings_update(
            actor=admin,
            project=project,
            app_id=project.name,
            namespaces=["application"],
            test_env=envs["test"],
            prod_env=envs["prod"],
            token=token,
        )
        done.append(project.name)
    return done
