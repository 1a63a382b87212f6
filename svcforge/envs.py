"""Python interpreters and shared virtual environments for rendered projects.

Rendered projects with the same dependencies share one virtual environment, created
with uv and keyed by a hash of the dependency list and the Python version. Projects
are run from their source tree (``src`` on the path), so nothing project-specific is
installed into the shared environment.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import TEMPLATE_ROOT

CACHE_DIR = Path(os.environ.get("SVCFORGE_CACHE", TEMPLATE_ROOT / ".cache"))


def find_python(version: str) -> str | None:
    """An interpreter for ``version`` ("3.12"): PATH first, then pyenv; None if absent."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found and "/shims/" not in found:  # a pyenv shim only works for the selected version
        return found
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for candidate in sorted(pyenv_root.glob(f"{version}.*"), reverse=True):
        python = candidate / "bin" / "python3"
        if python.exists():
            return str(python)
    return None


def uv() -> str:
    """The uv executable installed with the test dependencies."""
    beside_python = Path(sys.executable).parent / "uv"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv is not installed: run scripts/bootstrap.sh to set up the tools")
    return found


def project_requirements(project: Path) -> list[str]:
    """Runtime and dev requirements declared by a rendered project's pyproject.toml."""
    meta = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    extras = meta.get("optional-dependencies", {})
    return sorted({*meta["dependencies"], *extras.get("dev", [])})


@dataclass(frozen=True)
class Env:
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    def exe(self, name: str) -> str:
        return str(self.bin / name)

    def environ(self, project: Path, **extra: str) -> dict[str, str]:
        """Environment to run a project's tools: its venv first, its sources importable."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "OTEL_"))}
        env.pop("PYTHONPATH", None)
        env["VIRTUAL_ENV"] = str(self.path)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(project / "src")
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.update(extra)
        return env


def shared_env(project: Path, python_version: str) -> Env:
    """The shared venv for this project's dependencies, created on first use."""
    python = find_python(python_version)
    if python is None:
        raise LookupError(f"no Python {python_version} interpreter found")
    requirements = project_requirements(project)
    key = hashlib.sha256("\n".join([python_version, *requirements]).encode()).hexdigest()[:16]
    path = CACHE_DIR / "venvs" / f"py{python_version}-{key}"
    marker = path / ".complete"
    if not marker.exists():
        shutil.rmtree(path, ignore_errors=True)
        env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
        subprocess.run([uv(), "venv", "-q", "-p", python, str(path)], check=True, env=env)
        subprocess.run(
            [uv(), "pip", "install", "-q", "-p", str(path / "bin" / "python"), *requirements],
            check=True,
            env=env,
        )
        marker.write_text("\n".join(requirements) + "\n")
    return Env(path)
