"""The sandbox's wheelhouse (sandbox/wheelhouse.py): one per requirements file, complete or absent, and the
build agent's pip pointed at the complete ones only, never at an index. These tests fetch nothing: their
requirements are empty or local."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sandbox import wheelhouse

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPSPORTAL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "wheels"


def test_the_agent_reads_no_index_and_only_complete_wheelhouses(cache: Path, tmp_path: Path) -> None:
    fetched, missing = tmp_path / "fetched.txt", tmp_path / "missing.txt"
    fetched.write_text("# nothing to fetch\n")
    missing.write_text("hiredis==3.5.0\n")
    messages: list[str] = []
    house = wheelhouse.ensure(fetched, progress=messages.append)
    assert house == wheelhouse.path_for(fetched) and house.parent == cache
    assert wheelhouse.ready(fetched) and not wheelhouse.ready(missing)
    assert messages[-1] == f"[wheelhouse] {house}: 0 wheels ()"

    env = wheelhouse.agent_env([fetched, missing])
    assert env == {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(house), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # Without any wheelhouse the agent still reads no index: a build fails instead of reaching PyPI.
    assert wheelhouse.agent_env([missing])["PIP_NO_INDEX"] == "1"
    assert wheelhouse.agent_env([missing])["PIP_FIND_LINKS"] == ""

    # Current: reused without running pip. Edited: a wheelhouse of its own.
    wheelhouse.ensure(fetched, progress=messages.append)
    assert messages[-1] == f"[wheelhouse] {house} is current ({fetched})"
    fetched.write_text("# still nothing, but edited\n")
    assert wheelhouse.path_for(fetched) != house and not wheelhouse.ready(fetched)


def test_a_failed_fetch_leaves_no_wheelhouse_and_says_what_to_run(cache: Path, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{tmp_path}/absent-1.0-py3-none-any.whl\n")  # fails at once, offline
    with pytest.raises(wheelhouse.WheelhouseError) as failed:
        wheelhouse.ensure(requirements, progress=lambda _line: None)
    assert "pip wheel failed" in str(failed.value)
    assert wheelhouse.HOW_TO_BUILD in str(failed.value)
    assert not wheelhouse.ready(requirements)
    assert not wheelhouse.path_for(requirements).exists()
    assert [p.name for p in cache.iterdir()] == ["fetch.lock"]  # no half-fetched staging left


def test_make_fetches_the_wheelhouse_before_the_tests_and_the_sandbox() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in ("run", "test"):
        prerequisites = re.search(rf"^{target}:(.*)$", makefile, re.M)
        assert prerequisites and "wheelhouse" in prerequisites[1].split(), target
    assert re.search(r"^wheelhouse:.*\n\t\$\(PY\) -m sandbox\.wheelhouse build$", makefile, re.M)
    # The log proxy's requirements are among those fetched once it exists.
    assert REPO_ROOT / "logproxy" / "requirements.txt" in wheelhouse.REQUIREMENTS
