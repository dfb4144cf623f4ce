"""The control-plane build: never run by the suite, never leaves a half-built binary marked current.

A stand-in `go` (a shell script given as OPSPORTAL_GO) plays the toolchain, so these tests check the
build driver's bookkeeping in seconds; the real Go build is what `make cluster-binaries` runs.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandbox.ci import in_ci
from sandbox.kube.cluster import ClusterError, LocalCluster
from tests.polling import until

REPO_ROOT = Path(__file__).resolve().parents[2]

# Answers the go commands the driver issues. `build` writes part of its output, then fails, hangs or
# finishes as the test asks; `mod download -json` fails, so kwok (the second component) never builds.
FAKE_GO = textwrap.dedent(
    """\
    #!/bin/sh
    echo "$*" >> "$FAKE_GO_CALLS"
    case "$1" in
      mod)
        if [ "$2" = init ]; then echo "module $3" > go.mod; exit 0; fi
        echo "no network in this test" >&2; exit 1 ;;
      get) exit 0 ;;
      build)
        while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done
        printf 'half a binary' > "$out"
        case "$FAKE_GO_BUILD" in
          fail) exit 3 ;;
          hang) echo $$ > "$FAKE_GO_PID"; exec sleep 60 ;;
        esac
        printf '#!/bin/sh\\n' > "$out"; chmod +x "$out"; exit 0 ;;
    esac
    exit 0
    """
)


@pytest.fixture
def fake_go(tmp_path: Path) -> dict[str, str]:
    go = tmp_path / "go"
    go.write_text(FAKE_GO)
    go.chmod(0o755)
    return {
        **os.environ,
        "OPSPORTAL_GO": str(go),
        "OPSPORTAL_CACHE": str(tmp_path / "cache"),
        "FAKE_GO_CALLS": str(tmp_path / "calls"),
        "FAKE_GO_PID": str(tmp_path / "go.pid"),
    }


def _build(env: dict[str, str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sandbox.kube", "build"],
        cwd=REPO_ROOT,
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _stamp(env: dict[str, str]) -> dict:
    path = Path(env["OPSPORTAL_CACHE"]) / "bin" / "versions.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_a_failed_build_keeps_finished_components_and_marks_nothing_half_built(fake_go):
    result = _build(fake_go)
    assert result.returncode == 1
    assert "kwok: go mod download" in result.stderr  # the cause, not just "failed"
    bin_dir = Path(fake_go["OPSPORTAL_CACHE"]) / "bin"
    # etcd finished and is recorded; kwok failed and is neither recorded nor present.
    assert set(_stamp(fake_go)) == {"etcd"}
    assert (bin_dir / "etcd").read_text() == "#!/bin/sh\n"
    assert not (bin_dir / "kwok").exists()
    assert not list(bin_dir.glob(".building-*"))

    # The next build resumes with what is missing: etcd is not built again.
    Path(fake_go["FAKE_GO_CALLS"]).unlink()
    _build(fake_go)
    calls = Path(fake_go["FAKE_GO_CALLS"]).read_text()
    assert "etcd" not in calls
    assert "kwok" in calls


def test_a_build_that_fails_halfway_leaves_no_binary_behind(fake_go):
    result = _build(fake_go, FAKE_GO_BUILD="fail")
    assert result.returncode == 1
    bin_dir = Path(fake_go["OPSPORTAL_CACHE"]) / "bin"
    assert _stamp(fake_go) == {}
    assert not (bin_dir / "etcd").exists()
    assert not list(bin_dir.glob(".building-*"))


def test_a_killed_build_takes_go_with_it_and_leaves_its_component_outdated(fake_go, tmp_path):
    # A component recorded as current whose binary went missing is rebuilt; killing that rebuild
    # must not leave the half-written output looking current.
    bin_dir = Path(fake_go["OPSPORTAL_CACHE"]) / "bin"
    bin_dir.mkdir(parents=True)
    from sandbox.kube.build import ETCD_VERSION

    (bin_dir / "versions.json").write_text(json.dumps({"etcd": ETCD_VERSION}))
    builder = subprocess.Popen(
        [sys.executable, "-m", "sandbox.kube", "build"],
        cwd=REPO_ROOT,
        env={**fake_go, "FAKE_GO_BUILD": "hang"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = Path(fake_go["FAKE_GO_PID"])
    until("the stand-in go build to start", pid_file.exists)
    go_pid = int(pid_file.read_text())
    builder.send_signal(signal.SIGKILL)
    builder.wait(10)

    def go_gone() -> bool:
        try:
            os.kill(go_pid, 0)
        except ProcessLookupError:
            return True
        # A zombie has exited; only its parent (the shell) has not reaped it yet.
        return Path(f"/proc/{go_pid}/stat").read_text().split()[2] == "Z"

    until("the orphaned go build to die with its parent", go_gone, timeout=10)
    assert "etcd" not in _stamp(fake_go)
    assert not (bin_dir / "etcd").exists()
    with (Path(fake_go["OPSPORTAL_CACHE"]) / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # no stale lock: raises if still held


def test_the_suite_never_builds_a_cluster_whose_binaries_are_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path / "empty-cache"))
    cluster = LocalCluster(workdir=tmp_path / "kube")
    with pytest.raises(ClusterError, match="make cluster-binaries"):
        cluster.start(timeout=5)
    assert not (tmp_path / "empty-cache" / "src").exists()  # no wrapper module: no build began


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), ("", False), ("0", False), ("false", False)],
)
def test_ci_is_read_one_way(monkeypatch, value, expected):
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 error"), ("", "1 skipped")])
def test_kube_tests_without_binaries_fail_under_ci_and_skip_elsewhere(tmp_path, ci, outcome):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "tests/kube/test_resume.py",
            "-k",
            "resumes",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "CI": ci, "OPSPORTAL_CACHE": str(tmp_path / "empty-cache")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert outcome in result.stdout, result.stdout
    assert "control-plane binaries are not built" in result.stdout
    assert "make cluster-binaries" in result.stdout
    assert not (tmp_path / "empty-cache" / "src").exists()
