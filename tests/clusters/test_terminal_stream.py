"""The echo gate, the line editor and the exit-status marker, on byte streams taken from a real bash
in a real pty (see tests/clusters/test_terminal.py for the same over a pod)."""

from clusters.services.terminal_stream import EchoGate, LineEditor, StatusScanner

PROMPT = "\x1b[?2004hbash-5.2$ "


def run(steps) -> tuple[EchoGate, str]:
    """steps: ("t", typed) or ("o", shown); returns the gate and everything it released."""
    gate = EchoGate()
    released = ""
    for kind, text in steps:
        if kind == "t":
            gate.typed(text)
        else:
            gate.shown(text)
        released += gate.take()
    return gate, released


def test_echoed_keys_are_released_a_line_at_a_time():
    gate, released = run([("o", PROMPT), ("t", "l"), ("o", "l"), ("t", "s"), ("o", "s")])
    assert released == ""  # the line is not finished
    gate.typed("\r")
    gate.shown("\x1b[?2004l\r\r\nfile\r\n" + PROMPT)
    assert gate.take() == "ls\r"


def test_a_whole_line_sent_at_once_is_released_when_its_echo_comes_back():
    _, released = run([("t", "echo hel''lo; echo pid-$$\r"), ("o", "echo hel''lo; echo pid-$$\r\n")])
    assert released == "echo hel''lo; echo pid-$$\r"


def test_keys_typed_without_echo_are_withheld_sudo_style():
    # sudo/passwd/mysql -p: the password does not come back; the program prints a line feed after it.
    _, released = run(
        [
            ("o", "[sudo] password for dora: "),
            ("t", "hunter2"),
            ("t", "\r"),
            ("o", "\r\nroot\r\n" + PROMPT),
            ("t", "id\r"),
            ("o", "id\r\nuid=0\r\n" + PROMPT),
        ]
    )
    assert released == "id\r"
    assert "hunter2" not in released


def test_keys_typed_without_echo_are_withheld_read_s_style():
    # read -s prints nothing after Enter: the next output is the prompt, which is no echo either.
    gate, released = run(
        [
            ("t", "read -s x\r"),
            ("o", "read -s x\r\n\x1b[?2004l\r"),
            ("t", "bash-secret"),  # starts like the prompt: a coincidence must not release a prefix
            ("t", "\r"),
            ("o", "\x1b[?2004h" + "bash-5.2$ "),
            ("t", "pwd\r"),
            ("o", "pwd\r\n/\r\n"),
        ]
    )
    assert released == "read -s x\rpwd\r"
    assert gate.withheld_keys >= len("bash-secret\r")


def test_after_stty_minus_echo_nothing_typed_is_recorded():
    # bash's readline follows the tty: with -echo it shows nothing typed, not even commands.
    _, released = run(
        [("t", "stty -echo\r"), ("o", "stty -echo\r\n" + PROMPT), ("t", "echo hi\r"), ("o", "\r\nhi\r\n")]
    )
    assert released == "stty -echo\r"


def test_editing_keys_and_their_redraw_noise_do_not_withhold():
    # Backspace is shown as "\b\x1b[K" by readline and "\b \b" by a cooked tty; arrows as "\b".
    _, released = run(
        [
            ("t", "lsx"),
            ("o", "lsx"),
            ("t", "\x7f"),
            ("t", " -l"),  # typed before the Backspace's echo came back
            ("o", "\b \b -l"),
            ("t", "\x1b[D\x1b[D"),
            ("o", "\b\b"),
            ("t", "a"),
            ("o", "a-l\b\b"),  # an insert redraws the rest of the line
            ("t", "\r"),
            ("o", "\r\n"),
        ]
    )
    assert released == "lsx\x7f -l\x1b[D\x1b[Da\r"


def test_escape_sequences_and_status_markers_in_the_output_are_not_echo():
    _, released = run([("t", "ls\r"), ("o", "\x1b]6973;0\x07\x1b[1ml"), ("o", "\x1b[0ms\r\n")])
    assert released == "ls\r"


def test_finish_drops_held_keys_and_the_unfinished_line():
    gate = EchoGate()
    gate.typed("ls\r")
    gate.shown("ls\r\n")
    gate.typed("exi")
    gate.shown("exi")
    gate.typed("secret")  # never echoed
    assert gate.finish() == "ls\r"
    assert gate.withheld_keys == len("exisecret")


def test_line_editor_rebuilds_commands():
    editor = LineEditor()
    lines = editor.feed("lsx\x7f -l\x1b[Da\r")
    assert [(line.text, line.exact) for line in lines] == [("ls -al", True)]
    lines = editor.feed("echo one two\x17three\rgarbage\x15pwd\rrm -rf /tmp/x\x03\x01# \r")
    assert [line.text for line in lines] == ["echo one three", "pwd", "# "]
    assert editor.feed("\x1b[A\x1b[A\r")[0].text == "pwd"  # history recall: a best guess
    assert editor.feed("\x1b[A\r")[0].exact is False
    assert editor.feed("cat /etc/hos\t\r")[0].exact is False  # completion: unknown to the keys
    assert editor.feed("abc\x1b[H\x0b\rab\x01\x1b[3~\r") == [
        type(lines[0])("", True),
        type(lines[0])("b", True),
    ]


def test_status_scanner_finds_split_markers():
    scanner = StatusScanner()
    assert scanner.feed("out\x1b]6973;12") == []
    assert scanner.feed("7\x07$ \x1b]6973;0\x07") == [127, 0]
