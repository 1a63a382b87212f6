"""Fixtures of the template's tests: isolated Copier settings, cached renders, shared venvs."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from svcforge.envs import Env, shared_env
from svcforge.render import isolated_copier_settings, render

from .support import require_python

Render = Callable[..., Path]


@pytest.fixture(scope="session", autouse=True)
def _isolated_copier(tmp_path_factory: pytest.TempPathFactory) -> None:
    isolated_copier_settings(tmp_path_factory.mktemp("copier-settings"))


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Render:
    """Render the template once per distinct set of answers (treat the result read-only)."""
    cache: dict[str, Path] = {}

    def _render(**answers: Any) -> Path:
        key = json.dumps(answers, sort_keys=True)
        if key not in cache:
            root = tmp_path_factory.mktemp("render")
            cache[key] = render(root / "service", answers)
        return cache[key]

    return _render


@pytest.fixture
def fresh_copy(tmp_path: Path) -> Callable[[Path], Path]:
    """A writable copy of a cached render, for tests that change the project."""

    def _copy(project: Path) -> Path:
        target = tmp_path / project.name
        shutil.copytree(project, target)
        return target

    return _copy


@pytest.fixture(scope="session")
def project_env() -> Callable[[Path, str], Env]:
    """The shared virtual environment for a rendered project's dependencies."""

    def _env(project: Path, python_version: str = "3.11") -> Env:
        require_python(python_version)
        return shared_env(project, python_version)

    return _env


_suite_start = time.monotonic()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(
        f"svcforge suite wall time: {time.monotonic() - _suite_start:.1f} s "
        "(renders are cached per answer set, venvs shared per dependency set in .cache/)"
    )
