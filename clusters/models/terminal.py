"""What the web terminal keeps besides the session row: the commands run in it, and the command
patterns it refuses to send (per environment). Written by clusters.services.terminal_commands only."""

import fnmatch
import re

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from projects.choices import Environment

# Every line the guard checks is cut to this length first, so a pattern's cost is bounded.
MATCH_LIMIT = 1024


class TerminalCommand(models.Model):
    """One command line entered in a terminal session, rebuilt from the keys the terminal echoed.

    ``exact`` is False when the line used something the keys alone cannot show (Tab completion,
    history recall, Ctrl-R); ``exit_status`` is known only under bash (a prompt marker), else null.
    A refused line is kept too (``refused``), with the pattern that refused it; it never ran.
    """

    session = models.ForeignKey("clusters.TerminalSession", on_delete=models.CASCADE, related_name="commands")
    position = models.PositiveIntegerField()
    entered_at = models.DateTimeField(_("entered"))
    text = models.TextField(_("command"))
    exact = models.BooleanField(_("exact"), default=True)
    exit_status = models.SmallIntegerField(_("exit status"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    refused = models.BooleanField(_("refused"), default=False)
    refused_pattern = models.CharField(_("refused by"), max_length=500, blank=True)

    class Meta:
        ordering = ["session_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["session", "position"], name="terminal_command_position")
        ]
        indexes = [models.Index(fields=["entered_at"], name="terminal_command_time")]
        verbose_name = _("terminal command")
        verbose_name_plural = _("terminal commands")

    def __str__(self) -> str:
        return self.text[:80]


class PatternKind(models.TextChoices):
    REGEX = "regex", _("regular expression (found anywhere in the line)")
    GLOB = "glob", _("glob (matches the whole line)")


class RefusedCommandPattern(models.Model):
    """A command line pattern the terminal of one environment does not send to the pod.

    A guardrail against accidents, not a security boundary: an alias, a script or a variable gets
    around any pattern."""

    environment = models.CharField(_("environment"), max_length=8, choices=Environment.choices)
    kind = models.CharField(_("kind"), max_length=8, choices=PatternKind.choices, default=PatternKind.REGEX)
    pattern = models.CharField(_("pattern"), max_length=500)
    description = models.CharField(_("description"), max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["environment", "id"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "kind", "pattern"], name="refused_pattern_unique")
        ]
        verbose_name = _("refused command pattern")
        verbose_name_plural = _("refused command patterns")

    def __str__(self) -> str:
        return f"{self.environment}: {self.pattern}"

    def matches(self, line: str) -> bool:
        line = " ".join(line[:MATCH_LIMIT].split())
        if self.kind == PatternKind.GLOB:
            return fnmatch.fnmatchcase(line, self.pattern)
        return re.search(self.pattern, line) is not None
