"""Server sizing and tuning read from the environment, used by ``gunicorn.conf.py``.

Worker count: ``WEB_CONCURRENCY`` when set, otherwise
``max(1, WORKERS_PER_CPU * cpus)`` where ``cpus`` is the container's CPU limit
(cgroup v2 ``cpu.max`` or cgroup v1 CFS quota) rounded up, capped by the CPUs this
process may run on. The host's CPU count alone is never used when a limit exists.
"""

import math
import os
from collections.abc import Mapping
from pathlib import Path

WORKERS_PER_CPU = 2
CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU limit of this container in CPUs, or ``None`` when unlimited."""
    cpu_max = root / "cpu.max"  # cgroup v2: "<quota|max> <period>"
    if cpu_max.is_file():
        quota, _, period = cpu_max.read_text().strip().partition(" ")
        if quota == "max" or not period:
            return None
        return int(quota) / int(period)
    for v1 in (root / "cpu", root / "cpu,cpuacct", root):  # cgroup v1
        quota_file, period_file = v1 / "cpu.cfs_quota_us", v1 / "cpu.cfs_period_us"
        if quota_file.is_file() and period_file.is_file():
            quota_us = int(quota_file.read_text())
            if quota_us <= 0:
                return None
            return quota_us / int(period_file.read_text())
    return None


def available_cpus(root: Path = CGROUP_ROOT) -> int:
    """Whole CPUs this process may use: the cgroup limit rounded up, at least 1."""
    cpus = len(os.sched_getaffinity(0))
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def env_int(
    name: str,
    default: int,
    *,
    minimum: int = 0,
    maximum: int = 1_000_000,
    environ: Mapping[str, str] = os.environ,
) -> int:
    """An integer from the environment, or exit with a one-line message."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SystemExit(f"configuration error: {name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SystemExit(
            f"configuration error: {name} must be between {minimum} and {maximum}, got {value}"
        )
    return value


def worker_count(environ: Mapping[str, str] = os.environ, root: Path = CGROUP_ROOT) -> int:
    """``WEB_CONCURRENCY`` if set, else ``max(1, WORKERS_PER_CPU * available_cpus())``."""
    default = max(1, WORKERS_PER_CPU * available_cpus(root))
    return env_int("WEB_CONCURRENCY", default, minimum=1, maximum=256, environ=environ)
