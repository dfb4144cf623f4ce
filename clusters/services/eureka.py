"""Taking an environment's instance out of Eureka's service and putting it back (ops only).

Out of service is Eureka's status override (``PUT …/status?value=OUT_OF_SERVICE``): callers drop the
instance at their next registry fetch while its process keeps serving, and, unlike a de-registration, the
instance's own heartbeats do not undo it. Back in service removes the override.

As with a teardown, Eureka is asked first and the environment row is locked and audited after: a refused or
unreachable Eureka records nothing (the caller's 502 or 409), and a second try does what is left.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from clusters.models import ProjectEnvironment
from clusters.selectors.environments import EnvironmentRef
from clusters.selectors.eureka import eureka_app_name, eureka_url, instance_summary, not_configured_message
from integrations.eureka import EurekaClient
from integrations.eureka.client import OUT_OF_SERVICE, UP
from observability import events
from observability.services import audit_record
from opsportal.errors import StateConflict
from projects.access import is_ops

STATUSES = (OUT_OF_SERVICE, UP)


def environment_eureka_status_set(
    *, actor, ref: EnvironmentRef, instance_id: str, status: str, remote_addr: str | None = None
) -> dict:
    """Set ``status`` (OUT_OF_SERVICE, or UP: remove the override) for one instance of the environment's
    app; returns the instance as Eureka then shows it. Nothing is recorded when it was already so."""
    if not is_ops(actor):
        raise PermissionDenied(_("Only ops take instances out of Eureka's service and back."))
    if status not in STATUSES:
        raise ValidationError({"status": _("Choose OUT_OF_SERVICE or UP.")})
    url = eureka_url(ref.environment)
    if not url:
        raise StateConflict(not_configured_message(ref.environment))
    app = eureka_app_name(ref.environment)
    with EurekaClient(url) as eureka:
        before = eureka.instance(app, instance_id)
        if before is None:
            message = _("Eureka knows no instance %(id)s of %(app)s.") % {"id": instance_id, "app": app}
            raise ValidationError({"instance": message})
        wanted = status == OUT_OF_SERVICE
        if before.out_of_service_override == wanted:
            return instance_summary(before, {})
        if wanted:
            eureka.status_override_set(app, instance_id)
        else:
            eureka.status_override_remove(app, instance_id)
        after = eureka.instance(app, instance_id) or before
    with transaction.atomic():
        environment = ProjectEnvironment.objects.select_for_update().filter(pk=ref.environment.pk).first()
        if environment is None:
            raise StateConflict(_("This environment was taken down meanwhile."))
        verb = "environment.eureka.out_of_service" if wanted else "environment.eureka.in_service"
        audit_record(
            actor=actor,
            verb=verb,
            target=environment,
            project=ref.project,
            changes={
                "app": app,
                "instance": instance_id,
                "status": [before.status, after.status],
                "overridden_status": [before.overridden_status, after.overridden_status],
            },
            remote_addr=remote_addr,
        )
        transaction.on_commit(
            lambda: events.publish(
                stream=events.project_stream(ref.project.pk),
                type="environment-changed",
                payload={"environment": environment.environment, "verb": verb},
            )
        )
    return instance_summary(after, {})
