"""Demo data for `make run`: users ops, dev, qa, admin and one demo project. Idempotent."""

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
DEMO_PROJECT = "go-hello"


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
    if not Project.objects.filter(name=DEMO_PROJECT).exists():
        project = project_services.project_create(
            actor=users["admin"],
            name=DEMO_PROJECT,
            owner=users["dev"],
            description="Demo Go service: a tiny HTTP server with /healthz and /metrics.",
            language=Language.GO,
            gitlab_repository="demo/go-hello",
        )
        project_services.member_set(actor=users["admin"], project=project, user=users["qa"], role=Role.TESTER)
    return created
