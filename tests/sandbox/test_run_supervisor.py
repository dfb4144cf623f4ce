"""`make run`'s supervision of its children, with real processes: backoff, giving up, and the run lock."""

import subprocess
import sys
import time

from sandbox import run


def _lock_holder(var_dir, seconds: float) -> subprocess.Popen:
    """Another launcher: a process that takes the run lock, says so, and holds it for ``seconds``."""
    code = (
        "import sys, time; from pathlib import Path; from sandbox import run; "
        "lock = run.run_lock(Path(sys.argv[1])); print('held', flush=True); time.sleep(float(sys.argv[2]))"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(var_dir), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_child_that_keeps_crashing_at_start_is_given_up_on_saying_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(run, "MAX_RESTART_DELAY_SECONDS", 0.05)
    child = run.Supervised(
        "crasher",
        [sys.executable, "-c", "raise SystemExit(3)"],
        log=tmp_path / "c.log",
        env=None,
        cwd=tmp_path,
    )
    child.start()
    results = []
    deadline = time.monotonic() + 30
    while (not results or results[-1]) and time.monotonic() < deadline:
        results.append(child.check())
        time.sleep(0.02)
    assert results[-1] is False
    err = capsys.readouterr()
    assert err.out.count("The crasher started (pid") == run.MAX_FAST_CRASHES
    assert err.err.count("The crasher exited with code 3; restarting it in") == run.MAX_FAST_CRASHES - 1
    assert f"exited with code 3 {run.MAX_FAST_CRASHES} times in a row" in err.err and "giving up" in err.err


def test_restart_pauses_grow_and_reset_after_a_long_run(tmp_path, monkeypatch, capsys):
    child = run.Supervised(
        "sleeper",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        log=tmp_path / "s.log",
        env=None,
        cwd=tmp_path,
    )
    child.start()
    try:
        for expected in ("1 s", "2 s", "4 s"):
            child.proc.kill()
            child.proc.wait()
            assert child.check() is True
            assert f"restarting it in {expected}" in capsys.readouterr().err
            child.restart_at = time.monotonic()  # skip the pause
            assert child.check() is True and child.proc.poll() is None
        # A child that ran longer than FAST_CRASH_SECONDS starts over at the shortest pause.
        monkeypatch.setattr(run, "FAST_CRASH_SECONDS", 0.0)
        child.proc.kill()
        child.proc.wait()
        child.check()
        assert "restarting it in 1 s" in capsys.readouterr().err
    finally:
        if child.proc is not None and child.proc.poll() is None:
            child.proc.kill()


def test_a_second_launcher_waits_for_the_run_lock_and_gives_up_on_a_live_one(tmp_path, capsys):
    holder = _lock_holder(tmp_path, 1.5)
    try:
        started = time.monotonic()
        lock = run.run_lock(tmp_path, wait=30)
        assert lock is not None and time.monotonic() - started > 0.5  # it waited for the holder to exit
        assert f"Waiting for the previous `make run` (pid {holder.pid}) to stop" in capsys.readouterr().out
        assert (tmp_path / "run.pid").read_text().strip() != str(holder.pid)
        lock.close()
    finally:
        holder.wait(10)
    holder = _lock_holder(tmp_path, 30)
    try:
        assert run.run_lock(tmp_path, wait=0.5) is None
        assert f"Another `make run` (pid {holder.pid}) still runs" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait(10)
