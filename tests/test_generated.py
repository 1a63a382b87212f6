"""Every framework x Python version renders into a project whose own checks pass."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from svcforge.envs import Env

from .conftest import Render
from .support import FRAMEWORKS, PYTHON_VERSIONS, check_project, run


@pytest.mark.parametrize("python_version", PYTHON_VERSIONS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_generated_project_passes_its_own_checks(
    rendered: Render,
    project_env: Callable[[Path, str], Env],
    framework: str,
    python_version: str,
) -> None:
    project = rendered(framework=framework, python_version=python_version)
    env = project_env(project, python_version)
    version = run(
        [env.exe("python"), "-c", "import sys; print(sys.version)"], project, env.environ(project)
    ).stdout
    assert version.startswith(python_version)
    check_project(project, env)
