"""Readiness checks: the service is ready when every registered check passes."""

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

Check = Callable[[], bool]


class Readiness:
    """A named set of checks run by the ``/readyz`` endpoint.

    A check returns ``True`` when its dependency is usable. A check that returns
    ``False`` or raises marks the service as not ready.
    """

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def register(self, name: str, check: Check) -> None:
        self._checks[name] = check

    def run(self) -> dict[str, bool]:
        """Run every check; map each check's name to whether it passed."""
        results = {}
        for name, check in self._checks.items():
            try:
                results[name] = bool(check())
            except Exception:
                logger.exception("readiness check failed", extra={"check": name})
                results[name] = False
        return results
