"""Apply the portal-managed Prometheus configuration: render, check with promtool, replace, reload, verify.

The file changes only when clusters are added, renamed or removed (targets come from the portal's
http_sd endpoint without a reload). A configuration promtool rejects never replaces the running one;
a reload Prometheus refuses is recorded with its cause. Either way ops see it on the Clusters page.
One apply at a time: the state row stays locked from the render to the verdict.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import yaml
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.choices import PrometheusConfigStatus
from clusters.models import Cluster, PrometheusConfigState
from clusters.tasks import apply_prometheus_config
from integrations.errors import IntegrationError
from integrations.prometheus.client import PrometheusClient
from observability.monitoring.prometheus_config import render_prometheus_config
from observability.services import audit_record
from opsportal import runs
from opsportal.errors import StateConflict

PROMTOOL_TIMEOUT_SECONDS = 60
ERROR_MAX_CHARS = 4000


class ConfigRejected(Exception):
    """The configuration cannot be used; the message says why (promtool's output, a bad base)."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return ""


def _read_base() -> dict:
    path = settings.PROMETHEUS_CONFIG_BASE
    if not path:
        return {}
    try:
        base = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigRejected(f"The base configuration {path} cannot be read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigRejected(f"The base configuration {path} is not valid YAML: {exc}") from exc
    return base if base is not None else {}


def rules_dir() -> str:
    """Where the environments' alert rule files go: PROMETHEUS_RULES_DIR, else "rules" beside the
    configuration file; empty when the portal does not manage Prometheus' files."""
    if settings.PROMETHEUS_RULES_DIR:
        return str(Path(settings.PROMETHEUS_RULES_DIR).resolve())
    if settings.PROMETHEUS_CONFIG_FILE:
        return str(Path(settings.PROMETHEUS_CONFIG_FILE).resolve().parent / "rules")
    return ""


def prometheus_config_render() -> str:
    """The configuration the portal wants Prometheus to run now (ConfigRejected for a bad base)."""
    try:
        return render_prometheus_config(
            _read_base(),
            clusters=list(Cluster.objects.order_by("name").values_list("name", flat=True)),
            portal_url=settings.PROMETHEUS_PORTAL_URL,
            token_file=settings.MONITORING_TOKEN_FILE,
            scrape_interval=settings.PROMETHEUS_SCRAPE_INTERVAL,
            rules_dir=rules_dir(),
            alertmanager_url=settings.ALERTMANAGER_URL,
        )
    except ValueError as exc:
        raise ConfigRejected(str(exc)) from exc


def promtool_check(
    path: Path, *, what: str = "config", shown_as: str = "", timeout: float = PROMTOOL_TIMEOUT_SECONDS
) -> None:
    """``promtool check <what> <path>`` (config, rules): ConfigRejected with its output when it fails.
    ``shown_as`` names the file in that output instead of its temporary name."""
    try:
        result = subprocess.run(  # noqa: S603 - fixed argv, the tool from settings
            [settings.PROMTOOL, "check", what, str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ConfigRejected(f"promtool was not found ({settings.PROMTOOL}): set PROMTOOL.") from exc
    except subprocess.TimeoutExpired as exc:
        raise ConfigRejected(f"promtool did not finish within {timeout:g} s.") from exc
    if result.returncode != 0:
        output = (result.stdout + result.stderr).replace(
            str(path), shown_as or Path(settings.PROMETHEUS_CONFIG_FILE).name
        )
        raise ConfigRejected(f"promtool check {what} failed: {output.strip()}")


def write_checked(target: Path, text: str, *, what: str = "config") -> None:
    """Write ``text`` beside ``target``, check it (``promtool check <what>``), then rename it over
    ``target`` (atomic on one file system): a file promtool rejects never replaces the one in use."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        try:
            tmp.write_text(text)
            tmp.chmod(0o644)  # Prometheus may run as another user
        except OSError as exc:
            raise ConfigRejected(f"{target} cannot be written: {exc.strerror or exc}") from exc
        promtool_check(tmp, what=what, shown_as=target.name)
        try:
            tmp.replace(target)
        except OSError as exc:
            raise ConfigRejected(f"{target} cannot be replaced: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def prometheus_reload() -> str:
    """Ask Prometheus to reload and confirm it took the files; the cause when it did not, else ''."""
    client = PrometheusClient.from_settings()
    if client is None:
        return "PROMETHEUS_URL is not set, so Prometheus was not asked to reload."
    try:
        client.reload()
        if not client.last_reload_successful():
            return (
                "Prometheus reports prometheus_config_last_reload_successful 0: "
                "it kept the previous configuration."
            )
    except IntegrationError as exc:
        return str(exc)
    return ""


def prometheus_config_apply(*, actor=None, reason: str) -> PrometheusConfigState:
    """Bring Prometheus to the configuration the portal renders now and record the outcome.

    Does nothing when the portal does not manage the file (PROMETHEUS_CONFIG_FILE unset), and writes
    nothing when the rendered configuration is the one last applied successfully and still on disk."""
    if not settings.PROMETHEUS_CONFIG_FILE:
        return PrometheusConfigState.objects.filter(pk=PrometheusConfigState.SINGLETON_PK).first() or (
            PrometheusConfigState(pk=PrometheusConfigState.SINGLETON_PK)
        )
    target = Path(settings.PROMETHEUS_CONFIG_FILE)
    with transaction.atomic():
        PrometheusConfigState.objects.get_or_create(pk=PrometheusConfigState.SINGLETON_PK)
        state = PrometheusConfigState.objects.select_for_update().get(pk=PrometheusConfigState.SINGLETON_PK)
        status, error, sha = PrometheusConfigStatus.APPLIED, "", state.config_sha256
        try:
            text = prometheus_config_render()
            sha = _sha256(text)
            if (
                state.status == PrometheusConfigStatus.APPLIED
                and state.config_sha256 == sha
                and _file_sha256(target) == sha
            ):
                return state
            write_checked(target, text)
        except ConfigRejected as exc:
            status, error = PrometheusConfigStatus.CHECK_FAILED, str(exc)
        else:
            cause = prometheus_reload()
            if cause:
                status, error = PrometheusConfigStatus.RELOAD_FAILED, cause
        now = timezone.now()
        state.status, state.error = status, error[:ERROR_MAX_CHARS]
        state.attempted_at, state.reason = now, reason[:255]
        if status != PrometheusConfigStatus.CHECK_FAILED:
            state.config_sha256 = sha  # the file on disk now
        if status == PrometheusConfigStatus.APPLIED:
            state.applied_at = now
        state.save()
        audit_record(
            actor=actor,
            verb="prometheus_config.apply",
            target=state,
            changes={"status": status, "reason": state.reason, "config_sha256": sha, "error": state.error},
        )
    return state


def prometheus_config_request_apply(*, actor, remote_addr: str | None = None) -> PrometheusConfigState:
    """Queue an apply for ops ("Apply again"); the worker does it, a page never waits on Prometheus."""
    if not settings.PROMETHEUS_CONFIG_FILE:
        raise StateConflict(
            _(
                "The portal does not manage Prometheus' configuration here "
                "(PROMETHEUS_CONFIG_FILE is not set)."
            )
        )
    with transaction.atomic():
        PrometheusConfigState.objects.get_or_create(pk=PrometheusConfigState.SINGLETON_PK)
        state = PrometheusConfigState.objects.get(pk=PrometheusConfigState.SINGLETON_PK)
        audit_record(
            actor=actor, verb="prometheus_config.apply.request", target=state, remote_addr=remote_addr
        )
        name = getattr(actor, "get_username", lambda: "system")()
        runs.queue(apply_prometheus_config, reason=f"applied again by {name}")
    return state
