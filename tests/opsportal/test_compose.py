"""There is no Docker engine here, so the compose file is checked for what can be checked:
every command points at code that exists, and every variable it needs is documented."""

import importlib
import re
from pathlib import Path

import yaml
from django.conf import settings

BASE = Path(settings.BASE_DIR)


def _compose() -> dict:
    return yaml.safe_load((BASE / "docker-compose.yml").read_text())


def _documented_variables() -> set[str]:
    names = set()
    for line in (BASE / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match[1])
    return names


def test_production_topology_services_with_healthchecks():
    services = _compose()["services"]
    assert set(services) == {"postgres", "redis", "web", "worker", "beat"}
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"


def test_commands_point_at_existing_code():
    services = _compose()["services"]
    web = " ".join(services["web"]["command"])
    asgi = re.search(r"daphne .* ([\w.]+):(\w+)", web)
    module = importlib.import_module(asgi[1])
    assert callable(getattr(module, asgi[2]))
    for name in ("worker", "beat"):
        command = services[name]["command"]
        app_module = command[command.index("-A") + 1]
        celery_app = importlib.import_module(app_module).celery_app
        assert celery_app.main == "opsportal"
    beat_tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    celery_app.loader.import_default_modules()
    assert beat_tasks <= set(celery_app.tasks)


def test_every_variable_is_documented():
    text = (BASE / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    assert used, "the compose file should take its values from the environment"
    missing = used - _documented_variables()
    assert not missing, f"not in .env.example: {sorted(missing)}"


def test_every_setting_read_from_the_environment_is_documented():
    source = (BASE / "opsportal" / "settings.py").read_text()
    read = set(re.findall(r'env_(?:str|bool|int|list)\("([A-Z][A-Z0-9_]*)"', source))
    missing = read - _documented_variables()
    assert not missing, f"settings read these but .env.example does not document them: {sorted(missing)}"
