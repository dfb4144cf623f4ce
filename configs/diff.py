"""What releasing a namespace would change: its items against its latest release. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ADDED = "added"
CHANGED = "changed"
REMOVED = "removed"


@dataclass(frozen=True)
class KeyChange:
    key: str
    kind: str  # ADDED, CHANGED or REMOVED
    old: str | None  # the released value (None when added)
    new: str | None  # the current value (None when removed)


def config_diff(current: Mapping[str, str], released: Mapping[str, str] | None) -> list[KeyChange]:
    """Keys added, changed and removed since the release (``None``: never released, so every key is
    added). Current keys in their own order first, then the removed ones in the release's order."""
    released = released or {}
    changes = []
    for key, value in current.items():
        if key not in released:
            changes.append(KeyChange(key, ADDED, None, value))
        elif released[key] != value:
            changes.append(KeyChange(key, CHANGED, released[key], value))
    changes += [KeyChange(key, REMOVED, value, None) for key, value in released.items() if key not in current]
    return changes
