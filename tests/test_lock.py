"""The dependency lock a generated project starts with (``requirements.txt``).

- It satisfies the rendered ``pyproject.toml`` for every framework x metrics x tracing
  and every supported Python: a stale lock (``scripts/lock.py`` not re-run after a
  dependency changed) fails here.
- It is complete and hash-checked: installing it with ``--require-hashes --no-deps``
  gives an environment where every requirement of every package is met.
- After the first copy the project owns it: ``copier update`` keeps the team's lock
  even when the template's lock changed, without a conflict.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path

import copier
import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from svcforge import TEMPLATE_ROOT
from svcforge.envs import find_python, uv
from svcforge.render import render

from .conftest import Render
from .support import FRAMEWORKS, PYTHON_VERSIONS, require_tool, run

COMBINATIONS = list(itertools.product(FRAMEWORKS, (True, False), (True, False)))
IDS = [f"{f}-metrics_{m}-tracing_{t}".lower() for f, m, t in COMBINATIONS]


def parse_lock(text: str) -> list[tuple[Requirement, list[str]]]:
    """``[(pin, hashes)]`` of a pip requirements file with ``\\`` continuations."""
    entries = []
    for logical in re.sub(r"\\\n", " ", text).splitlines():
        line = logical.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        hashes = re.findall(r"--hash=(sha256:[0-9a-f]{64})", line)
        spec = re.sub(r"--hash=\S+", "", line).strip()
        entries.append((Requirement(spec), hashes))
    return entries


def project_dependencies(project: Path) -> list[Requirement]:
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    return [Requirement(dep) for dep in meta["dependencies"]]


@pytest.mark.parametrize(("framework", "metrics", "tracing"), COMBINATIONS, ids=IDS)
def test_lock_satisfies_the_rendered_pyproject(
    rendered: Render, framework: str, metrics: bool, tracing: bool
) -> None:
    project = rendered(framework=framework, metrics=metrics, tracing=tracing)
    entries = parse_lock((project / "requirements.txt").read_text())
    assert entries, "empty lock"
    for pin, hashes in entries:
        assert hashes, f"{pin} has no hash"
        (specifier,) = pin.specifier
        assert specifier.operator == "==", f"{pin} is not an exact pin"

    stale = []
    for python in PYTHON_VERSIONS:
        environment = {
            **default_environment(),
            "python_version": python,
            "python_full_version": f"{python}.0",
            "sys_platform": "linux",
            "platform_system": "Linux",
        }
        pinned: dict[str, str] = {}
        for pin, _ in entries:
            if pin.marker is None or pin.marker.evaluate(environment):
                name = canonicalize_name(pin.name)
                assert name not in pinned, f"{name} pinned twice for Python {python}"
                pinned[name] = next(iter(pin.specifier)).version
        for requirement in project_dependencies(project):
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue
            version = pinned.get(canonicalize_name(requirement.name))
            if version is None or not requirement.specifier.contains(version, prereleases=True):
                stale.append(f"Python {python}: {requirement} (lock: {version})")
    assert not stale, (
        "includes/locks is stale; run `.venv/bin/python scripts/lock.py`:\n" + "\n".join(stale)
    )


@pytest.mark.parametrize(("framework", "metrics", "tracing"), COMBINATIONS, ids=IDS)
def test_lock_installs_hash_checked_and_complete(
    rendered: Render, tmp_path: Path, framework: str, metrics: bool, tracing: bool
) -> None:
    project = rendered(framework=framework, metrics=metrics, tracing=tracing)
    python = find_python("3.11")
    assert python is not None
    venv = tmp_path / "venv"
    environ = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    environ.pop("VIRTUAL_ENV", None)
    run([uv(), "venv", "-q", "-p", python, str(venv)], tmp_path, environ)
    target = ["-p", str(venv / "bin" / "python")]
    lock = str(project / "requirements.txt")
    run([uv(), "pip", "install", "-q", *target, "--require-hashes", "--no-deps", "-r", lock],
        tmp_path, environ)  # fmt: skip
    # Every requirement of every locked package is met by the lock itself.
    run([uv(), "pip", "check", *target], tmp_path, environ)


def test_copier_update_keeps_the_projects_own_lock(tmp_path: Path) -> None:
    """``_skip_if_exists``: a template lock change never conflicts with the team's lock."""
    template = tmp_path / "template"
    run(["git", "clone", "-q", str(TEMPLATE_ROOT), str(template)], tmp_path)  # committed HEAD
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    run([*git, "tag", "v1.0.0"], template)

    project = render(tmp_path / "service", {"framework": "flask"}, src=template, vcs_ref="v1.0.0")
    run(["git", "init", "-q"], project)
    run(["git", "add", "-A"], project)
    run([*git, "commit", "-q", "-m", "generate"], project)
    team_lock = (project / "requirements.txt").read_text() + "# relocked by the team\n"
    (project / "requirements.txt").write_text(team_lock)
    run([*git, "commit", "-q", "-am", "make lock"], project)

    # A template release that changes the lock this project started from.
    for lock in (template / "includes" / "locks").glob("flask*.txt"):
        lock.write_text(lock.read_text() + "# new template lock\n")
    run([*git, "commit", "-q", "-am", "relock"], template)
    run([*git, "tag", "v1.1.0"], template)

    copier.run_update(
        str(project), defaults=True, overwrite=True, unsafe=True, quiet=True, vcs_ref="v1.1.0"
    )
    assert (project / "requirements.txt").read_text() == team_lock
    status = run(["git", "status", "--porcelain"], project).stdout
    assert "requirements.txt" not in status, status
    assert not list(project.rglob("*.rej")), "copier left a rejected hunk"
    shutil.rmtree(template)


def test_make_lock_reproduces_the_shipped_lock(
    rendered: Render, fresh_copy: Callable[[Path], Path]
) -> None:
    """The project's `make lock` and scripts/lock.py run the same command: same file."""
    project = fresh_copy(rendered(framework="fastapi"))
    shipped = (project / "requirements.txt").read_text()
    environ = {**os.environ, "PATH": f"{Path(uv()).parent}{os.pathsep}{os.environ['PATH']}"}
    run([require_tool("make"), "lock"], project, environ)
    assert (project / "requirements.txt").read_text() == shipped
