"""Fault injection shared by the stand-ins: the next N requests matching a pattern get an error answer,
so tests can prove how the portal's clients and tasks behave when GitLab or Jenkins misbehave."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass


@dataclass
class Fault:
    pattern: re.Pattern[str]
    status: int
    remaining: int
    method: str | None
    # True: the request is served for real and only its answer is replaced (a lost response).
    after: bool = False
    retry_after: int | str | None = None

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def inject(
        self,
        pattern: str,
        status: int = 500,
        count: int = 1,
        method: str | None = None,
        *,
        after: bool = False,
        retry_after: int | str | None = None,
    ) -> None:
        """Answer the next ``count`` requests whose path+query matches regex ``pattern`` with ``status``;
        ``retry_after`` is sent as the ``Retry-After`` header, as given (seconds, or an HTTP date)."""
        verb = method.upper() if method else None
        fault = Fault(re.compile(pattern), status, count, verb, after, retry_after)
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method in (None, method) and fault.pattern.search(path):
                    fault.remaining -= 1
                    return fault
        return None
