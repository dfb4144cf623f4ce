"""What Eureka knows about an environment's service: its instances, their status, and the pod of each.

The cluster says where its services register (``Cluster.eureka_url``). The app name is the one the service
registers under: Spring Cloud upper-cases ``spring.application.name``, and the portal names every object of
an environment after the project, so the project's name upper-cased — unless the environment's own
variables name the app (``eureka_app_env_names``, first found wins), as they do for a service whose name
differs from the project's. An instance belongs to a pod when its address is the pod's IP; an instance
matching no pod of the environment runs elsewhere (a VM, another cluster) or belongs to a pod gone since.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from clusters.models import ProjectEnvironment
from clusters.selectors.environments import EnvironmentRef
from integrations.errors import IntegrationError
from integrations.eureka import EurekaClient, EurekaInstance

# Environment variables a Eureka client takes its app name from, strongest first: Spring Cloud's
# eureka.instance.appname, then spring.application.name (Spring's relaxed binding of the variables), then
# the sandbox demo services' own variable.
EUREKA_APP_ENV_NAMES = ("EUREKA_INSTANCE_APPNAME", "SPRING_APPLICATION_NAME", "EUREKA_APP")


def eureka_app_name(environment: ProjectEnvironment) -> str:
    """The app name the environment's service registers under in Eureka (upper case, as Eureka keeps it)."""
    request = (environment.spec or {}).get("request") or {}
    variables = {}
    for pair in request.get("env_vars") or []:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            variables[str(pair[0])] = str(pair[1])
    for name in EUREKA_APP_ENV_NAMES:
        if variables.get(name, "").strip():
            return variables[name].strip().upper()
    return environment.project.name.upper()


def eureka_url(environment: ProjectEnvironment) -> str:
    return environment.cluster.eureka_url if environment.cluster else ""


def not_configured_message(environment: ProjectEnvironment) -> str:
    return _(
        "Eureka is not configured for the cluster %(cluster)s: ops set its Eureka URL on the cluster's page."
    ) % {"cluster": environment.cluster.name if environment.cluster else "—"}


def instance_summary(instance: EurekaInstance, pods_by_ip: dict[str, str]) -> dict:
    return {
        "instance_id": instance.instance_id,
        "app": instance.app,
        "host_name": instance.host_name,
        "ip_addr": instance.ip_addr,
        "port": instance.port,
        "status": instance.status,
        "overridden_status": instance.overridden_status,
        "out_of_service": instance.out_of_service_override,
        "last_updated": instance.last_updated.isoformat() if instance.last_updated else None,
        "metadata": instance.metadata,
        "pod": pods_by_ip.get(instance.ip_addr) or pods_by_ip.get(instance.host_name),
    }


def _pods_by_ip(ref: EnvironmentRef) -> tuple[dict[str, str], str]:
    """The environment's pods by IP, and why they could not be read (or "")."""
    try:
        with ref.client() as client:
            pods = client.list_objects("Pod", ref.namespace, label_selector=ref.label_selector)
    except IntegrationError as exc:
        return {}, str(exc)
    found = {}
    for pod in pods.get("items") or []:
        ip = (pod.get("status") or {}).get("podIP")
        if ip:
            found[ip] = (pod.get("metadata") or {}).get("name", "")
    return found, ""


def eureka_instances(ref: EnvironmentRef, *, raise_errors: bool = False) -> dict:
    """The instances of the environment's app, each with its pod, for the page and the API.

    ``enabled`` is False when the cluster has no Eureka URL (``error`` says so). When Eureka cannot be
    read, ``error`` says why, or with ``raise_errors`` the IntegrationError is raised (the API's 502).
    ``pods_error`` says why the pods could not be matched (the instances are still listed)."""
    environment = ref.environment
    app = eureka_app_name(environment)
    url = eureka_url(environment)
    state: dict = {"enabled": bool(url), "app": app, "instances": [], "error": "", "pods_error": ""}
    if not url:
        state["error"] = not_configured_message(environment)
        return state
    try:
        with EurekaClient(url) as eureka:
            instances = eureka.instances(app)
    except IntegrationError as exc:
        if raise_errors:
            raise
        state["error"] = _("Eureka could not be read: %(e)s") % {"e": exc}
        return state
    pods, state["pods_error"] = _pods_by_ip(ref) if instances else ({}, "")
    rows = [instance_summary(instance, pods) for instance in instances]
    # The environment's pods first, by name; then what runs elsewhere.
    state["instances"] = sorted(rows, key=lambda i: (i["pod"] is None, i["pod"] or "", i["instance_id"]))
    return state
