"""Optimistic concurrency: a version of what an editor saw, compared when they save.

A form or an API client sends back the version it loaded; the service compares it with the current one
under the row lock and refuses a stale edit with a StateConflict that says what changed, and by whom,
instead of silently writing over it. The version is a fingerprint of the edited content, so it needs no
column: two equal contents have the same version, whoever wrote them.
"""

from __future__ import annotations

import hashlib
import json

from django.utils.translation import gettext as _

VALUE_SHOWN = 60  # characters of a changed value shown in the message


def _without_none(value):
    # A field set to None and a field left out mean the same; both must give the same version.
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value]
    return value


def content_version(data) -> str:
    """A short fingerprint of JSON data: equal data, equal version."""
    canonical = json.dumps(_without_none(data), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def if_match_version(request) -> str | None:
    """The version an API client sent in an ``If-Match`` header (an ETag, weak or strong), if any."""
    header = (request.headers.get("If-Match") or "").strip()
    if not header or header == "*":
        return None
    return header.removeprefix("W/").strip('"')


def _shown(value) -> str:
    text = "—" if value in (None, "", [], {}) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= VALUE_SHOWN else text[: VALUE_SHOWN - 1] + "…"


def combine_changes(changes_oldest_first: list[dict]) -> dict:
    """{field: [old, new]} across several edits: the value before the first and after the last."""
    combined: dict = {}
    for changes in changes_oldest_first:
        for field, (old, new) in ((k, v) for k, v in changes.items() if isinstance(v, list) and len(v) == 2):
            combined[field] = [combined[field][0] if field in combined else old, new]
    return {field: values for field, values in combined.items() if values[0] != values[1]}


def stale_message(*, what: str, changes: dict, authors: list[str]) -> str:
    """Why a stale edit was refused: what changed since it was loaded, and by whom."""
    if changes:
        listed = "; ".join(f"{field}: {_shown(old)} → {_shown(new)}" for field, (old, new) in changes.items())
        text = _("%(what)s was changed since you loaded it: %(changes)s.") % {"what": what, "changes": listed}
    else:
        text = _("%(what)s was changed since you loaded it.") % {"what": what}
    if authors:
        text += " " + _("Changed by %(who)s.") % {"who": ", ".join(dict.fromkeys(authors))}
    return text + " " + _("Nothing was saved: reload it, and make your edit again.")
