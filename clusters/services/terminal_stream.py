"""What the portal reads from a terminal's byte streams, without a database: which typed keys the
terminal echoed (only those are recorded), the command lines they edit, and the exit-status marker
the portal's shell prints before each prompt.

Pure and single-threaded: the relay thread of one session owns one of each.

No-echo detection (see docs/architecture.md, "Terminal recordings"). A pod's tty echo flag cannot be
read from outside the pod, so the gate watches the output instead: every key typed is held back, and a
held printable key is released only when the next printable character the pod shows is that key. Keys
typed while the echo is off (a password prompt: sudo, passwd, mysql -p, ``read -s``) never come back, so
the first printable output or line feed after them shows a mismatch and their whole line is withheld:
a line is released all or nothing, when its Enter (or Ctrl-C, Ctrl-D) has been seen to come back.
Control keys (Enter, arrows, Backspace, Tab…) are released with the printable key that follows them or
with the output they cause; their echo is redraw noise, not their own character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ENTER_KEYS = ("\r", "\n")
LINE_END_KEYS = (*ENTER_KEYS, "\x03", "\x04")
# A typed escape sequence (arrows, Home/End, Delete, bracketed paste) is one key.
_KEY = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|O.|.)?|.", re.DOTALL)
# What a redraw may print between echoes: spaces (Backspace's "\b \b") and the line's own characters.
REDRAW_SPACE = " "
MAX_LINE = 4096


def split_keys(text: str) -> list[str]:
    return _KEY.findall(text)


def is_printable(key: str) -> bool:
    return len(key) == 1 and key >= " " and key != "\x7f"


@dataclass
class EchoGate:
    """Holds typed keys until their echo is seen; ``released`` lines are safe to record.

    ``typed(text)`` before the keys go to the pod, ``shown(text)`` with each decoded output chunk.
    ``take()`` returns the keys released since the last call, a whole line at a time.
    """

    pending: list[str] = field(default_factory=list)
    # Released keys of the line being typed, recorded once its end comes back.
    line: list[str] = field(default_factory=list)
    line_withheld: bool = False
    ready: list[str] = field(default_factory=list)
    withheld_keys: int = 0
    _escape: str = ""  # an output escape sequence split across chunks

    def typed(self, text: str) -> None:
        self.pending.extend(split_keys(text))

    def shown(self, text: str) -> None:
        for char in text:
            if self._escape or char == "\x1b":
                self._escape = _escape_step(self._escape + char)
                continue
            if char == "\n":
                self._line_feed()
            elif char >= " " and char != "\x7f":
                self._printable(char)
            else:  # \r, \b, bell…: redraw, but they show the keys before them were read
                self._release_controls()

    def take(self) -> str:
        out = "".join(self.ready)
        self.ready.clear()
        return out

    def line_echoed(self) -> bool:
        """True when everything typed on the current line so far has come back."""
        return not self.pending and not self.line_withheld

    def finish(self) -> str:
        """At the end of the session: what is ready. The unfinished line is dropped like held keys: it
        never ran, and a line is recorded only once its end has come back."""
        self.withheld_keys += len(self.pending) + len(self.line)
        self.pending.clear()
        self.line.clear()
        return self.take()

    # -- internals ---------------------------------------------------------------------------------

    def _release(self, count: int) -> None:
        for key in self.pending[:count]:
            self.line.append(key)
            if key in LINE_END_KEYS:
                if not self.line_withheld:
                    self.ready.extend(self.line)
                else:
                    self.withheld_keys += len(self.line)
                self.line = []
                self.line_withheld = False
        del self.pending[:count]

    def _withhold_line(self) -> None:
        """Drop the pending keys up to and including the next line end: that line is not recorded."""
        end = next((i for i, key in enumerate(self.pending) if key in LINE_END_KEYS), None)
        count = len(self.pending) if end is None else end + 1
        self.withheld_keys += count + len(self.line)
        del self.pending[:count]
        self.line = []
        self.line_withheld = end is None  # the rest of this line, typed later, is withheld too

    def _release_controls(self) -> None:
        count = 0
        while count < len(self.pending) and not is_printable(self.pending[count]):
            count += 1
        self._release(count)

    def _first_printable(self) -> int | None:
        return next((i for i, key in enumerate(self.pending) if is_printable(key)), None)

    def _printable(self, char: str) -> None:
        first = self._first_printable()
        if first is None:
            self._release_controls()  # output caused by control keys (history recall, completion)
            return
        if self.pending[first] == char:
            self._release(first + 1)
            return
        if first > 0:
            # Control keys before it (Backspace, arrows) redraw the line; their noise is not a mismatch.
            self._release(first)
        if char == REDRAW_SPACE or char in self.line:
            # Redraw noise (Backspace's "\b \b", the rest of a line after an insert). Tolerating it
            # cannot leak: a line is recorded only if all of it comes back, Enter included.
            return
        self._withhold_line()

    def _line_feed(self) -> None:
        first = self._first_printable()
        end = next((i for i, key in enumerate(self.pending) if key in LINE_END_KEYS), None)
        if first is not None and (end is None or first < end):
            # A new line began before this line's keys came back: they were typed without echo.
            self._withhold_line()
        else:
            self._release_controls()


def _escape_step(seq: str) -> str:
    """Consume an output escape sequence; returns what is still open ('' once it is complete)."""
    if len(seq) < 2:
        return seq
    kind = seq[1]
    if kind == "[":  # CSI: parameters, then a final byte
        return "" if len(seq) > 2 and "@" <= seq[-1] <= "~" else seq[:64]
    if kind in "]PX^_":  # OSC/DCS…: up to BEL or ST
        return "" if seq.endswith(("\x07", "\x1b\\")) else seq[-4096:]
    if kind in "()*+#%":  # a character set or line size: one more byte
        return "" if len(seq) > 2 else seq
    return ""  # a two-byte escape


# --- command lines -------------------------------------------------------------------------------


@dataclass
class Line:
    text: str
    exact: bool


@dataclass
class LineEditor:
    """Rebuilds the command line from keys, the way readline and a cooked tty edit it.

    Understood: printable keys (inserted at the cursor), Backspace, Delete, Left/Right, Home/End,
    Ctrl-A/E/B/F, Ctrl-U (kill to start), Ctrl-K (kill to end), Ctrl-W (kill word), Ctrl-C (drop
    the line). Up/Down recall the session's own earlier commands as a best guess; Tab completion,
    Ctrl-R search and anything else the shell fills in cannot be seen in the keys, so such a line is
    marked inexact (its text is what the keys alone give).
    """

    buffer: list[str] = field(default_factory=list)
    cursor: int = 0
    exact: bool = True
    history: list[str] = field(default_factory=list)
    history_index: int | None = None

    @property
    def text(self) -> str:
        return "".join(self.buffer)

    def feed(self, keys: str) -> list[Line]:
        """Apply keys; returns the lines entered with Enter."""
        entered = []
        for key in split_keys(keys):
            line = self.key(key)
            if line is not None:
                entered.append(line)
        return entered

    def key(self, key: str) -> Line | None:
        if key in ENTER_KEYS:
            line = Line(self.text[:MAX_LINE], self.exact)
            if line.text.strip() and (not self.history or self.history[-1] != line.text):
                self.history.append(line.text)
            self._reset()
            return line
        if is_printable(key):
            self.buffer.insert(self.cursor, key)
            self.cursor += 1
        elif key in ("\x7f", "\x08"):
            if self.cursor:
                self.cursor -= 1
                del self.buffer[self.cursor]
        elif key in ("\x1b[3~", "\x04"):
            if self.cursor < len(self.buffer):
                del self.buffer[self.cursor]
        elif key in ("\x1b[D", "\x1bOD", "\x02"):
            self.cursor = max(0, self.cursor - 1)
        elif key in ("\x1b[C", "\x1bOC", "\x06"):
            self.cursor = min(len(self.buffer), self.cursor + 1)
        elif key in ("\x1b[H", "\x1bOH", "\x1b[1~", "\x01"):
            self.cursor = 0
        elif key in ("\x1b[F", "\x1bOF", "\x1b[4~", "\x05"):
            self.cursor = len(self.buffer)
        elif key == "\x15":
            del self.buffer[: self.cursor]
            self.cursor = 0
        elif key == "\x0b":
            del self.buffer[self.cursor :]
        elif key == "\x17":
            start = self.cursor
            while start and self.buffer[start - 1] == " ":
                start -= 1
            while start and self.buffer[start - 1] != " ":
                start -= 1
            del self.buffer[start : self.cursor]
            self.cursor = start
        elif key == "\x03":
            self._reset()
        elif key in ("\x1b[A", "\x1bOA", "\x1b[B", "\x1bOB"):
            self._recall(up=key[-1] == "A")
        elif key in ("\x1b[200~", "\x1b[201~"):  # bracketed paste markers
            pass
        else:  # Tab, Ctrl-R and the rest: the shell changes the line in ways the keys do not show
            self.exact = False
        return None

    def _recall(self, *, up: bool) -> None:
        # A best guess: the shell's history may hold more than this session (a history file) or less
        # (HISTCONTROL), so a recalled line is never exact.
        self.exact = False
        if not self.history:
            return
        if self.history_index is None:
            self.history_index = len(self.history)
        self.history_index = max(0, self.history_index - 1) if up else self.history_index + 1
        if self.history_index >= len(self.history):
            self.history_index = len(self.history)
            self.buffer = []
        else:
            self.buffer = list(self.history[self.history_index])
        self.cursor = len(self.buffer)

    def _reset(self) -> None:
        self.buffer = []
        self.cursor = 0
        self.exact = True
        self.history_index = None


# --- exit status ----------------------------------------------------------------------------------

# bash prints this invisible OSC before each prompt (PROMPT_COMMAND, set by the portal's shell start):
# the exit status of what the shell last ran. sh has no PROMPT_COMMAND, so there it is unknown.
STATUS_MARKER = re.compile(r"\x1b\]6973;(\d{1,3})\x07")
STATUS_PROMPT_COMMAND = r'printf "\033]6973;%s\007" "$?"'


@dataclass
class StatusScanner:
    """Finds the exit-status markers in the output, also when one is split across chunks."""

    tail: str = ""

    def feed(self, text: str) -> list[int]:
        data = self.tail + text
        statuses = [int(match.group(1)) for match in STATUS_MARKER.finditer(data)]
        last = data.rfind("\x1b]6973;")
        self.tail = data[last:][:16] if last != -1 and "\x07" not in data[last:] else ""
        return statuses
