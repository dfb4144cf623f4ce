"""The command audit of the web terminal and its refused command patterns.

Commands are rows written by a session's relay thread as lines are entered (see terminal_stream for
how a line is rebuilt and why only echoed keys count). Refused patterns are ops' per-environment list;
a line that matches one is never sent to the pod. That is a guardrail against accidents, not a
security boundary: an alias, a script, a variable or a base64 pipe gets around any pattern.
"""

from __future__ import annotations

import fnmatch
import re

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import PatternKind, RefusedCommandPattern, TerminalCommand, TerminalSession
from observability.services import audit_record
from projects.choices import Environment

WITHHELD_TEXT = "[not echoed: withheld]"
# What a fresh installation refuses in every environment (migration 0006 installs a frozen copy).
DEFAULT_PATTERNS = [
    (r"(^|[;&|(`]|\s)rm\s+(-{1,2}[\w-]+\s+)*/\*?(\s|$|;)", "rm -rf /"),
    (r"(^|[;&|(`]|\s)mkfs(\.\w+)?(\s|$)", "mkfs"),
    (r":\(\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:", ":(){ :|:& };:"),
    (r"(^|[;&|(`]|\s)(shutdown|halt|poweroff)(\s|$|;)", "shutdown"),
    (r"(^|[;&|(`]|\s)reboot(\s|$|;)", "reboot"),
]
# Lines a pattern is tried on when it is saved: one that refuses these would refuse every Enter.
HARMLESS_LINES = ("", "ls", "cd /tmp", "echo hello")


def pattern_validate(*, kind: str, pattern: str) -> None:
    """Raise ValidationError (by field) unless the pattern compiles and does not refuse everything."""
    if kind not in PatternKind.values:
        raise ValidationError({"kind": _("Choose regex or glob.")})
    if not pattern.strip():
        raise ValidationError({"pattern": _("Enter a pattern.")})
    if len(pattern) > 500:
        raise ValidationError({"pattern": _("A pattern has at most 500 characters.")})
    if kind == PatternKind.REGEX:
        try:
            compiled = re.compile(pattern)
        # A repetition count beyond the engine's limit raises OverflowError, not re.error.
        except (re.error, OverflowError) as exc:
            raise ValidationError(
                {"pattern": _("Not a valid regular expression: %(error)s") % {"error": exc}}
            ) from None
        refuses_all = [line for line in HARMLESS_LINES if compiled.search(line)]
    else:
        refuses_all = [line for line in HARMLESS_LINES if fnmatch.fnmatchcase(line, pattern)]
    if refuses_all:
        raise ValidationError(
            {
                "pattern": _("This pattern would refuse harmless lines too (%(line)s); make it narrower.")
                % {"line": repr(refuses_all[0])}
            }
        )


def pattern_create(
    *,
    actor,
    environment: str,
    pattern: str,
    kind: str = PatternKind.REGEX,
    description: str = "",
    remote_addr: str | None = None,
) -> RefusedCommandPattern:
    if environment not in Environment.values:
        raise ValidationError({"environment": _("Choose test or prod.")})
    pattern_validate(kind=kind, pattern=pattern)
    try:
        with transaction.atomic():
            row = RefusedCommandPattern.objects.create(
                environment=environment,
                kind=kind,
                pattern=pattern,
                description=description[:200],
                created_by=actor,
            )
            audit_record(
                actor=actor,
                verb="terminal.pattern.create",
                target=row,
                changes={
                    "environment": environment,
                    "kind": kind,
                    "pattern": pattern,
                    "description": description,
                },
                remote_addr=remote_addr,
            )
    except IntegrityError:
        raise ValidationError({"pattern": _("This environment already refuses this pattern.")}) from None
    return row


def pattern_delete(*, actor, pattern_id: int, remote_addr: str | None = None) -> None:
    with transaction.atomic():
        row = RefusedCommandPattern.objects.select_for_update().filter(pk=pattern_id).first()
        if row is None:
            return
        audit_record(
            actor=actor,
            verb="terminal.pattern.delete",
            target=row,
            changes={"environment": row.environment, "kind": row.kind, "pattern": row.pattern},
            remote_addr=remote_addr,
        )
        row.delete()


def patterns_install_defaults() -> int:
    """Add the default patterns that are missing (for a database emptied after its migrations)."""
    added = 0
    for environment in Environment.values:
        for pattern, description in DEFAULT_PATTERNS:
            _, created = RefusedCommandPattern.objects.get_or_create(
                environment=environment,
                kind=PatternKind.REGEX,
                pattern=pattern,
                defaults={"description": description},
            )
            added += created
    return added


def patterns_for(environment: str) -> list[RefusedCommandPattern]:
    return list(RefusedCommandPattern.objects.filter(environment=environment))


def refusal_match(patterns: list[RefusedCommandPattern], line: str) -> RefusedCommandPattern | None:
    if not line.strip():
        return None
    return next((pattern for pattern in patterns if pattern.matches(line)), None)


def command_record(*, session_id: int, position: int, text: str, exact: bool) -> TerminalCommand:
    return TerminalCommand.objects.create(
        session_id=session_id, position=position, text=text, exact=exact, entered_at=timezone.now()
    )


def command_finish(*, command_id: int, exit_status: int) -> None:
    TerminalCommand.objects.filter(pk=command_id, exit_status__isnull=True).update(
        exit_status=exit_status, finished_at=timezone.now()
    )


def command_refuse(
    *, session: TerminalSession, position: int, text: str | None, pattern: RefusedCommandPattern
) -> TerminalCommand:
    """Keep the refused line (or a placeholder when its keys were not echoed) and audit the refusal."""
    shown = WITHHELD_TEXT if text is None else text
    with transaction.atomic():
        command = TerminalCommand.objects.create(
            session=session,
            position=position,
            text=shown,
            entered_at=timezone.now(),
            refused=True,
            refused_pattern=pattern.pattern,
        )
        audit_record(
            actor=session.user,
            verb="terminal.refused",
            target=session,
            project=session.project,
            # Not the line itself: the project's audit trail is read by every member, the command
            # row only by those who may read the session (it may hold more than the refused part).
            changes={
                "environment": session.environment,
                "pod": session.pod,
                "pattern": pattern.pattern,
                "command_id": command.pk,
                "command_echoed": text is not None,
            },
            remote_addr=session.remote_addr,
        )
    return command
