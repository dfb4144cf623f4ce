"""The environment page's Eureka section: the instances of the service (a partial the page loads and
refreshes with HTMX, so rendering the page never waits for Eureka) and ops' out-of-service buttons."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from clusters.selectors import environments as selectors
from clusters.selectors.eureka import eureka_instances
from clusters.services.eureka import environment_eureka_status_set
from integrations.errors import IntegrationError
from integrations.eureka.client import OUT_OF_SERVICE
from opsportal.errors import StateConflict
from opsportal.http import client_address
from projects.access import is_ops


def _partial(request, ref, *, result: str = "", ok: bool = True, status: int = 200):
    context = {
        "ref": ref,
        "project": ref.project,
        "eureka": eureka_instances(ref),
        "can_change": is_ops(request.user),
        "result": result,
        "ok": ok,
    }
    # HTMX swaps only 2xx answers: a refusal reaches the page as 200 with a red message.
    if request.headers.get("HX-Request"):
        status = 200
    return render(request, "clusters/environment/_eureka.html", context, status=status)


@login_required
@require_safe
def eureka_section(request, name: str, environment: str):
    ref = selectors.environment_get(user=request.user, name=name, environment=environment)
    return _partial(request, ref)


@login_required
@require_POST
def eureka_status(request, name: str, environment: str, instance: str):
    ref = selectors.environment_get(user=request.user, name=name, environment=environment)
    status = request.POST.get("status", "")
    try:
        shown = environment_eureka_status_set(
            actor=request.user,
            ref=ref,
            instance_id=instance,
            status=status,
            remote_addr=client_address(request),
        )
    except ValidationError as exc:
        return _partial(request, ref, result=" ".join(exc.messages), ok=False, status=400)
    except StateConflict as exc:
        return _partial(request, ref, result=str(exc), ok=False, status=409)
    except IntegrationError as exc:
        text = _("Eureka refused: %(e)s") % {"e": exc}
        return _partial(request, ref, result=text, ok=False, status=502)
    if status == OUT_OF_SERVICE:
        text = _("%(id)s is OUT_OF_SERVICE: callers drop it at their next registry fetch.")
    else:
        text = _("%(id)s is back in service (now %(status)s).")
    return _partial(request, ref, result=text % {"id": instance, "status": shown["status"]})
