"""An environment's alert rules: every member reads them, owners and ops change thresholds, durations,
severities and switch rules off; each row saves on its own (HTMX swaps the row)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from clusters.forms.alert_rules import AlertRuleForm
from clusters.selectors import environments as selectors
from clusters.selectors.alert_rules import alert_rule_rows, alert_rules_summary
from clusters.services.alert_rules import alert_rule_update, rules_enabled
from opsportal.forms import add_service_errors
from opsportal.http import client_address
from projects.access import Action

ROW_TEMPLATE = "clusters/environment/_alert_rule_row.html"


def _row_context(ref, row, *, form=None, saved=False) -> dict:
    can_edit = Action.EDIT_PROJECT in ref.actions
    if form is None:
        initial = {f: getattr(row.setting, f) for f in ("enabled", "threshold", "for_seconds", "severity")}
        form = AlertRuleForm(initial=initial, rule=row.spec.alertname, read_only=not can_edit)
    return {
        "ref": ref,
        "project": ref.project,
        "row": row,
        "form": form,
        "can_edit": can_edit,
        "saved": saved,
    }


@login_required
@require_safe
def alert_rules_page(request, name: str, environment: str):
    ref = selectors.environment_get(user=request.user, name=name, environment=environment)
    rows = [_row_context(ref, row) for row in alert_rule_rows(ref.environment)]
    return render(
        request,
        "clusters/environment/alert_rules.html",
        {
            "ref": ref,
            "project": ref.project,
            "rows": rows,
            "can_edit": Action.EDIT_PROJECT in ref.actions,
            "rules_enabled": rules_enabled(),
            "rule_file": alert_rules_summary(ref.environment, enabled=rules_enabled()),
        },
    )


@login_required
@require_POST
def alert_rule_save(request, name: str, environment: str, rule: str):
    ref = selectors.environment_get(
        user=request.user, name=name, environment=environment, action=Action.EDIT_PROJECT
    )
    row = next((r for r in alert_rule_rows(ref.environment) if r.spec.alertname == rule), None)
    if row is None:
        raise Http404("No such rule.")
    form = AlertRuleForm(request.POST, rule=rule)
    status, saved = 400, False
    if form.is_valid():
        try:
            alert_rule_update(
                environment=ref.environment,
                rule=rule,
                actor=request.user,
                remote_addr=client_address(request),
                **form.cleaned_data,
            )
        except ValidationError as exc:
            add_service_errors(form, exc)
        else:
            status, saved = 200, True
    if not request.headers.get("HX-Request"):
        if saved:
            messages.success(request, _("%(rule)s saved.") % {"rule": rule})
            return redirect("environment-alert-rules", name=name, environment=environment)
        rows = [
            _row_context(ref, r, form=form if r.spec.alertname == rule else None)
            for r in alert_rule_rows(ref.environment)
        ]
        context = {"ref": ref, "project": ref.project, "rows": rows, "can_edit": True}
        context["rules_enabled"] = rules_enabled()
        context["rule_file"] = alert_rules_summary(ref.environment, enabled=context["rules_enabled"])
        return render(request, "clusters/environment/alert_rules.html", context, status=status)
    if saved:
        row = next(r for r in alert_rule_rows(ref.environment) if r.spec.alertname == rule)
        form = None
    # HTMX swaps only 2xx answers: a refused row comes back as 200 with its errors shown.
    return render(request, ROW_TEMPLATE, _row_context(ref, row, form=form, saved=saved))
