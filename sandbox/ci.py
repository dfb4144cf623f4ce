"""The one reading of the CI variable, for the test harness, the fixtures and pytest's hooks.

CI systems spell it differently (GitHub and GitLab set ``true``, others ``1``); ``.ci/run`` exports
``CI=true`` itself so that a local ``bash .ci/run`` behaves exactly like CI.
"""

import os

_TRUE = frozenset({"1", "true", "yes", "on"})


def in_ci() -> bool:
    """True when the run must prove everything: no skips for missing services, fresh servers."""
    return os.environ.get("CI", "").strip().lower() in _TRUE
