"""The matrix tier: render every combination and run ruff, mypy and its tests.

Speed without cutting corners:

- the template's working tree is snapshotted once and rendered from a plain directory
  (no git clone per render); renders run in parallel processes;
- combinations whose *checked inputs* are byte-identical form a group, and the Python
  checks (ruff, ruff format, mypy, pytest) run once per group. The checked inputs are
  every rendered file except those no check reads: the answers file, README, CI files,
  container and deployment files, and then only if no ``.py`` file of the project names
  them. Every combination is reported with its group, so the table says what ran where;
- groups with the same dependencies share a virtual environment (``svcforge.envs``) and,
  per worker, a mypy cache (mypy re-checks whatever changed, by content hash);
- the CI-workflow lint runs once per distinct workflow file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import TEMPLATE_ROOT
from .check import FAILED, PASSED, SKIPPED, Result, Tools, python_checks, workflow_checks
from .envs import find_python, shared_env
from .matrix import Combination
from .render import isolated_copier_settings, render

#: Top-level paths no Python check reads, unless a .py file of the project names them.
UNCHECKED = {
    ".copier-answers.yml": ".copier-answers",
    "README.md": "README",
    ".github": ".github",
    ".gitlab-ci.yml": "gitlab-ci",
    ".pre-commit-config.yaml": "pre-commit",
    "Dockerfile": "Dockerfile",
    ".dockerignore": "dockerignore",
    "deploy": "deploy",
    "Makefile": "Makefile",
}
WORKFLOW_FILES = (".github", ".gitlab-ci.yml")


def snapshot_template(dst: Path, src: Path = TEMPLATE_ROOT) -> Path:
    """Copy the template's working tree (tracked and untracked, not ignored) to ``dst``."""
    if not (src / ".git").exists():  # already a plain copy
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".venv", ".cache", "__pycache__"))
        return dst
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=src,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = src / name
        if not source.is_file():  # deleted but not yet committed
            continue
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dst


def _render_one(args: tuple[str, str, dict[str, object], str]) -> tuple[str, float, str]:
    template, dst, answers, settings = args
    os.environ["COPIER_SETTINGS_PATH"] = settings
    start = time.monotonic()
    try:
        render(Path(dst), answers, src=template, vcs_ref=None)
    except Exception as error:
        return dst, time.monotonic() - start, f"render failed: {error}"
    return dst, time.monotonic() - start, ""


def _mentioned(project: Path) -> set[str]:
    """The UNCHECKED paths that some Python file of the project refers to."""
    text = "\n".join(
        path.read_text(errors="replace")
        for path in project.rglob("*.py")
        if ".git" not in path.parts
    )
    return {name for name, needle in UNCHECKED.items() if needle in text}


def checked_inputs_key(project: Path, python_version: str) -> str:
    """A hash of every file the Python checks read (see the module docstring)."""
    skip = set(UNCHECKED) - _mentioned(project)
    digest = hashlib.sha256(f"python {python_version}\n".encode())
    for path in sorted(project.rglob("*")):
        relative = path.relative_to(project)
        if not path.is_file() or relative.parts[0] in skip or relative.parts[0] == ".git":
            continue
        digest.update(f"{relative}\n".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _workflow_key(project: Path) -> str | None:
    files = sorted(
        path
        for name in WORKFLOW_FILES
        for path in (
            [project / name] if (project / name).is_file() else (project / name).rglob("*")
        )
        if path.is_file()
    )
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(project)}\n".encode() + path.read_bytes())
    return digest.hexdigest()


@dataclass
class Row:
    number: int
    combination: Combination
    project: Path
    render_seconds: float = 0.0
    error: str = ""
    group: int = 0
    workflow: Result | None = None


@dataclass
class Group:
    number: int
    python_version: str
    members: list[Row] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.status == PASSED for r in self.results)


def _cell(results: Sequence[Result], name: str) -> str:
    for result in results:
        if result.name == name:
            return {PASSED: "ok", FAILED: "FAIL", SKIPPED: "SKIP"}[result.status]
    return "-"


def verify_matrix(
    combinations: Sequence[Combination],
    *,
    jobs: int = 2,
    echo: Callable[[str], None] = print,
    work_dir: Path | None = None,
    template: Path = TEMPLATE_ROOT,
) -> bool:
    """Render and check ``combinations``; print the table; True when everything passed."""
    start = time.monotonic()
    jobs = max(1, jobs)
    owned = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="svcforge-matrix-")) if work_dir is None else work_dir
    try:
        settings = isolated_copier_settings(root)
        snapshot = snapshot_template(root / "template", template)
        rows = [
            Row(number, combination, root / "projects" / f"{number:03d}-{combination.name}")
            for number, combination in enumerate(combinations, start=1)
        ]
        echo(f"matrix: rendering {len(rows)} combination(s) with {jobs} worker(s)")
        with ProcessPoolExecutor(jobs) as pool:
            tasks = [
                (str(snapshot), str(row.project), dict(row.combination.answers), str(settings))
                for row in rows
            ]
            for row, (_, seconds, error) in zip(rows, pool.map(_render_one, tasks), strict=True):
                row.render_seconds, row.error = seconds, error
        render_wall = time.monotonic() - start

        groups: dict[str, Group] = {}
        for row in rows:
            if row.error:
                continue
            version = str(row.combination.answers.get("python_version", "3.11"))
            key = checked_inputs_key(row.project, version)
            if key not in groups:
                groups[key] = Group(len(groups) + 1, version)
            groups[key].members.append(row)
            row.group = groups[key].number
        echo(
            f"matrix: rendered in {render_wall:.0f} s; {len(groups)} group(s) of "
            "byte-identical checked inputs"
        )

        local = threading.local()
        mypy_root = root / "mypy-cache"

        def check_group(group: Group) -> None:
            project = group.members[0].project
            began = time.monotonic()
            if find_python(group.python_version) is None:
                group.results = [
                    Result("python", SKIPPED, detail=f"no Python {group.python_version}")
                ]
                return
            env = shared_env(project, group.python_version)
            if not hasattr(local, "slot"):
                local.slot = threading.get_ident()
            cache = mypy_root / f"{env.path.name}-{local.slot}"
            tools = Tools(
                [env.bin], {"PYTHONPATH": str(project / "src"), "MYPY_CACHE_DIR": str(cache)}
            )
            group.results = python_checks(project, tools)
            group.seconds = time.monotonic() - began

        # Environments are created one at a time (two workers must not build the same one).
        ordered = sorted(groups.values(), key=lambda g: g.number)
        for group in ordered:
            if find_python(group.python_version) is not None:
                shared_env(group.members[0].project, group.python_version)
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(check_group, ordered))

        workflow_results: dict[str, Result] = {}
        for row in rows:
            if row.error:
                continue
            key = _workflow_key(row.project)
            if key is None:
                continue
            if key not in workflow_results:
                found = workflow_checks(row.project, Tools())
                workflow_results[key] = found[0] if found else Result("workflow", PASSED)
            row.workflow = workflow_results[key]

        return _report(rows, ordered, echo, time.monotonic() - start)
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)


def _report(
    rows: Sequence[Row], groups: Sequence[Group], echo: Callable[[str], None], wall: float
) -> bool:
    by_number = {group.number: group for group in groups}
    header = ["#", "combination", "group", "ruff", "format", "mypy", "pytest", "ci-lint", "seconds"]
    table = []
    for row in rows:
        if row.error:
            table.append(
                [
                    str(row.number),
                    row.combination.name,
                    "-",
                    "RENDER FAILED",
                    "",
                    "",
                    "",
                    "",
                    f"{row.render_seconds:.1f}",
                ]
            )
            continue
        group = by_number[row.group]
        first = group.members[0] is row
        results = group.results
        seconds = f"{group.seconds:.1f}" if first else f"(group {group.number})"
        workflow = "-"
        if row.workflow is not None:
            workflow = {PASSED: "ok", FAILED: "FAIL", SKIPPED: "SKIP"}[row.workflow.status]
        table.append(
            [
                str(row.number),
                row.combination.name,
                f"{group.number}{'' if first else ' (same)'}",
                _cell(results, "ruff check"),
                _cell(results, "ruff format"),
                _cell(results, "mypy"),
                _cell(results, "pytest"),
                workflow,
                seconds,
            ]
        )
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    echo("")
    echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    for line in table:
        echo("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    echo(
        "\n'group': combinations with byte-identical checked inputs (src/, tests/, "
        "pyproject.toml, gunicorn.conf.py, ... everything but README, CI, container and "
        "deploy files) share one run of ruff, format, mypy and pytest, shown on the group's "
        "first row; '(same)' rows reuse that result. ci-lint runs once per distinct workflow file."
    )

    failures = []
    for group in groups:
        for result in group.results:
            if result.status != PASSED:
                names = ", ".join(row.combination.name for row in group.members)
                failures.append(
                    f"--- group {group.number} ({names}): {result.name} "
                    f"{result.status} ---\n{result.detail}"
                )
    seen: set[int] = set()
    for row in rows:
        if row.error:
            failures.append(f"--- {row.combination.name}: {row.error}")
        if (
            row.workflow is not None
            and row.workflow.status != PASSED
            and id(row.workflow) not in seen
        ):
            seen.add(id(row.workflow))
            failures.append(
                f"--- {row.combination.name}: {row.workflow.name} "
                f"{row.workflow.status} ---\n{row.workflow.detail}"
            )
    for failure in failures:
        echo(failure)
    ok = not failures and bool(rows)
    passed = sum(
        1
        for row in rows
        if not row.error
        and by_number[row.group].ok
        and (row.workflow is None or row.workflow.status == PASSED)
    )
    echo(
        f"\nmatrix: {len(rows)} combination(s), {len(groups)} group(s), {passed} passed, "
        f"{len(rows) - passed} failed; {wall:.0f} s wall time -> {'OK' if ok else 'FAILED'}"
    )
    # The conventional closing line of a test run, alone, for CI log readers.
    echo(f"matrix: {passed} passed, {len(rows) - passed} failed")
    return ok
