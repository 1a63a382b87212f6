"""Generation speed: how long ``copier copy``, ``svcforge new`` and ``copier update`` take.

Measured side by side in one run, interleaved round by round, against a small reference
template that this script writes on the fly (three questions, six files), so the ratios
say how much svcforge costs over Copier's own floor on the same machine at the same
moment. Every command runs as a user runs it: a fresh process, wall time.

    .venv/bin/python benchmarks/generation.py                # 7 rounds, matrix tier once
    .venv/bin/python benchmarks/generation.py --runs 3 --no-matrix

Both templates are snapshotted into temporary git repositories with two release tags
(``1.0.0``, then a template fix tagged ``1.0.1``), so the update crosses one release
exactly as a team's project does. The svcforge snapshot is the committed ``HEAD``
(``--worktree`` adds uncommitted changes). The markdown table goes to
``docs/benchmarks/generation.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "benchmarks" / "generation.md"
BIN = Path(sys.executable).parent
COPIER = str(BIN / "copier")
SVCFORGE = str(BIN / "svcforge")

TARGET_COPY_S = 1.0
TARGET_UPDATE_S = 2.5

#: The release "fix" both templates get between tag 1.0.0 and 1.0.1.
FIX_LINE = "Released template fix: see the CHANGELOG."

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


# --------------------------------------------------------------------------- #
# The reference template: the smallest template that still looks like a service
# --------------------------------------------------------------------------- #
REFERENCE_FILES = {
    "copier.yml": """\
_subdirectory: template
_templates_suffix: .jinja
project_name:
  type: str
  default: My Service
package_name:
  type: str
  default: "{{ project_name | lower | replace(' ', '_') }}"
python_version:
  type: str
  default: "3.11"
  choices: ["3.11", "3.12", "3.13"]
""",
    "template/{{_copier_conf.answers_file}}.jinja": "{{ _copier_answers|to_nice_yaml -}}\n",
    "template/pyproject.toml.jinja": """\
[project]
name = "{{ package_name }}"
version = "0.1.0"
requires-python = ">={{ python_version }}"
dependencies = ["flask>=3"]
""",
    "template/README.md.jinja": "# {{ project_name }}\n\nRun it with `flask run`.\n",
    "template/src/{{package_name}}/__init__.py": '"""The service."""\n',
    "template/src/{{package_name}}/app.py.jinja": """\
from flask import Flask


def create_app() -> Flask:
    app = Flask("{{ package_name }}")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
""",
    "template/tests/test_app.py.jinja": """\
from {{ package_name }}.app import create_app


def test_healthz() -> None:
    assert create_app().test_client().get("/healthz").json == {"status": "ok"}
""",
}


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def release(repo: Path, tag: str, message: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", message)
    git(repo, "tag", tag)


def make_reference(dst: Path) -> Path:
    for name, text in REFERENCE_FILES.items():
        path = dst / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(dst, "init", "-q", "-b", "main")
    release(dst, "1.0.0", "reference template 1.0.0")
    readme = dst / "template/README.md.jinja"
    readme.write_text(readme.read_text() + f"\n{FIX_LINE}\n")
    release(dst, "1.0.1", "reference template 1.0.1")
    return dst


def snapshot_svcforge(dst: Path, worktree: bool) -> tuple[Path, str]:
    """A clean git repository of svcforge with releases 1.0.0 and 1.0.1 (a README fix)."""
    dst.mkdir(parents=True)
    commit = git(ROOT, "rev-parse", "--short", "HEAD")
    if worktree:
        listed = git(ROOT, "ls-files", "-z", "-c", "-o", "--exclude-standard")
        for name in filter(None, listed.split("\0")):
            source = ROOT / name
            if source.is_file():
                (dst / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, dst / name)
        if git(ROOT, "status", "--porcelain"):
            commit += " + uncommitted changes"
    else:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD"], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(dst)], input=archive.stdout, check=True)
    git(dst, "init", "-q", "-b", "main")
    release(dst, "1.0.0", "svcforge 1.0.0")
    readme = dst / "template/README.md.jinja"
    readme.write_text(readme.read_text() + f"\n{FIX_LINE}\n")
    release(dst, "1.0.1", "svcforge 1.0.1: README fix")
    return dst, commit


# --------------------------------------------------------------------------- #
# Measuring
# --------------------------------------------------------------------------- #
@dataclass
class Measure:
    name: str
    group: str  # "svcforge", "reference" or "floor"
    command: str  # what the table shows
    run: Callable[[Path], float]  # returns seconds; given a fresh scratch directory
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def timed(args: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(
            f"benchmark command failed ({result.returncode}): {' '.join(args)}\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return elapsed


def project_from(template: Path, dst: Path, env: dict[str, str], ref: str) -> Path:
    """A generated project committed to git, ready for ``copier update``."""
    subprocess.run(
        [
            COPIER,
            "copy",
            "--trust",
            "--defaults",
            "--quiet",
            "--vcs-ref",
            ref,
            str(template),
            str(dst),
        ],
        env=env,
        capture_output=True,
        check=True,
    )
    git(dst, "init", "-q", "-b", "main")
    git(dst, "add", "-A")
    git(dst, "commit", "-q", "--no-verify", "-m", "generated")
    return dst


def copy_measure(template: Path, env: dict[str, str]) -> Callable[[Path], float]:
    def run(scratch: Path) -> float:
        dst = scratch / "project"
        elapsed = timed(
            [COPIER, "copy", "--trust", "--defaults", "--quiet", str(template), str(dst)],
            scratch,
            env,
        )
        assert (dst / ".copier-answers.yml").is_file(), "copy wrote no answers file"
        return elapsed

    return run


def update_measure(base_project: Path, env: dict[str, str]) -> Callable[[Path], float]:
    def run(scratch: Path) -> float:
        project = scratch / "project"
        shutil.copytree(base_project, project, symlinks=True)
        elapsed = timed(
            [COPIER, "update", "--trust", "--defaults", "--quiet", "--conflict", "inline"],
            project,
            env,
        )
        readme = (project / "README.md").read_text()
        assert FIX_LINE in readme, "the update did not apply the 1.0.1 fix"
        assert "_commit: 1.0.1" in (project / ".copier-answers.yml").read_text()
        status = git(project, "status", "--porcelain")
        assert "UU" not in status, f"the update left conflicts: {status}"
        assert not list(project.rglob("*.rej")), "the update left .rej files"
        return elapsed

    return run


def svcforge_new_measure(env: dict[str, str]) -> Callable[[Path], float]:
    def run(scratch: Path) -> float:
        dst = scratch / "project"
        elapsed = timed([SVCFORGE, "new", str(dst), "--defaults"], scratch, env)
        assert (dst / ".copier-answers.yml").is_file(), "svcforge new wrote no answers file"
        return elapsed

    return run


def command_measure(args: Sequence[str], env: dict[str, str]) -> Callable[[Path], float]:
    def run(scratch: Path) -> float:
        return timed(args, scratch, env)

    return run


def matrix_tier(env: dict[str, str], scratch: Path) -> tuple[str, float, str] | None:
    """Run the local matrix tier once, as .ci/run does: (command, seconds, outcome).

    None when this checkout has no matrix tier. A failing combination does not stop the
    benchmark: the time is still the tier's wall time, and the outcome says it failed.
    """
    if not (ROOT / "svcforge" / "tier.py").is_file():
        return None
    label = "svcforge matrix --verify --jobs 2"  # exactly what .ci/run runs
    start = time.perf_counter()
    result = subprocess.run(
        [SVCFORGE, "matrix", "--verify", "--jobs", "2"],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    summary = lines[-1].strip() if lines else ""
    outcome = "passed" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
    if summary:
        outcome += f"; its last line: `{summary}`"
    return label, seconds, outcome


# --------------------------------------------------------------------------- #
# The machine
# --------------------------------------------------------------------------- #
def machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    copier_version = subprocess.run(
        [COPIER, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    copier_pkg = Path(
        subprocess.run(
            [sys.executable, "-c", "import copier, os; print(os.path.dirname(copier.__file__))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores visible",
        "Memory": memory,
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Copier": copier_version,
        "git": git(ROOT, "--version"),
        "Bytecode of copier precompiled": "yes" if (copier_pkg / "__pycache__").is_dir() else "no",
    }


def load_average() -> str:
    try:
        return " / ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "n/a"


# --------------------------------------------------------------------------- #
# Report
# --------------------------------------------------------------------------- #
def fmt(seconds: float) -> str:
    return f"{seconds:.2f} s"


def template_paths() -> tuple[int, int, int]:
    """(files, files and directories, path parts) Copier walks and renders under template/."""
    entries = list((ROOT / "template").rglob("*"))
    files = sum(1 for p in entries if p.is_file())
    parts = sum(len(p.relative_to(ROOT / "template").parts) for p in entries)
    return files, len(entries), parts


def where_the_time_goes(by_name: dict[str, Measure]) -> list[str]:
    imports = by_name["floor: Python + import copier"].median
    cold = by_name["floor: Python + import copier, no bytecode cache"].median
    clone = by_name["floor: git clone of the template"].median
    copy = by_name["svcforge copy"].median
    files, entries, parts = template_paths()
    update_ratio = by_name["svcforge update"].median / copy
    ref_update_ratio = by_name["reference update"].median / by_name["reference copy"].median
    return [
        "## Where the time goes",
        "",
        f"- Every Copier command first starts Python and imports Copier ({fmt(imports)} here)"
        f" and clones the template with git ({fmt(clone)}); together"
        f" {100 * (imports + clone) / copy:.0f} % of a svcforge copy. The reference"
        " template pays the same, which is why the ratios are small.",
        f"- Without compiled bytecode the import alone takes {fmt(cold)}: `uv pip install`"
        " does not compile bytecode, and with `PYTHONDONTWRITEBYTECODE=1` set (common in"
        " CI and containers) Python recompiles Copier and its dependencies on every run."
        " `scripts/bootstrap.sh` now installs with `--compile-bytecode`: of everything"
        f" found, this was the largest cost ({fmt(cold - imports)} per command).",
        "- Copier renders a YAML list default item by item, as one Jinja template per item."
        " The two computed name lists of `copier.yml` (about 300 names) are therefore"
        " written as YAML text that Copier parses once.",
        f"- Copier walks every path under `template/` ({files} files, {entries} entries)"
        " and renders it part by part before applying `_exclude`: each of the"
        f" {parts} path parts costs two Jinja compilations (the part and the answers-file"
        " path), on every render. Files that are only included (framework variants,"
        " partials, dependency locks) therefore live in `includes/`, beside `template/`,"
        " where Copier never walks; inside `template/` they were 68 more entries and 213"
        " more path parts.",
        "- Copier also runs `git config --get core.fileMode` once per written file (its"
        " executable-bit sync, copier-org/copier#2605): one git process per generated"
        " file, per render; only fewer generated files would avoid it.",
        "- An update renders the template twice more than a copy (the old release with the"
        " old answers, then the new one) and runs git to diff and re-apply the project's"
        f" changes: here it costs {update_ratio:.1f} copies for svcforge and"
        f" {ref_update_ratio:.1f} for the reference template.",
    ]


def report(
    measures: list[Measure],
    *,
    runs: int,
    command: str,
    commit: str,
    info: dict[str, str],
    load_before: str,
    load_after: str,
    matrix_note: str,
) -> str:
    by_name = {m.name: m for m in measures}
    copy, update = by_name["svcforge copy"], by_name["svcforge update"]
    ref_copy, ref_update = by_name["reference copy"], by_name["reference update"]
    lines = [
        "# Generation speed",
        "",
        "<!-- Written by benchmarks/generation.py; rerun it rather than editing this page. -->",
        "",
        f"Produced by `{command}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC from"
        f" svcforge commit `{commit}`. Each figure is the median wall time of {runs}"
        " fresh processes (min and max beside it), measured round by round, interleaved,"
        " so the svcforge and reference rows saw the same machine load.",
        "",
        "| Operation | Command | Median | Min | Max | Runs |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for m in measures:
        lines.append(
            f"| {m.name} | `{m.command}` | {fmt(m.median)} | {fmt(min(m.times))} |"
            f" {fmt(max(m.times))} | {len(m.times)} |"
        )
    lines += [
        "",
        "## Ratios and targets",
        "",
        "| Figure | Value | Target | Met |",
        "| --- | ---: | ---: | :---: |",
        f"| svcforge copy, median | {fmt(copy.median)} | ≤ {TARGET_COPY_S:.1f} s |"
        f" {'yes' if copy.median <= TARGET_COPY_S else '**no**'} |",
        f"| svcforge update across one release, median | {fmt(update.median)} |"
        f" ≤ {TARGET_UPDATE_S:.1f} s | {'yes' if update.median <= TARGET_UPDATE_S else '**no**'} |",
        f"| copy: svcforge / reference template | {copy.median / ref_copy.median:.2f}x | | |",
        f"| update: svcforge / reference template | {update.median / ref_update.median:.2f}x | | |",
        "",
        f"Matrix tier: {matrix_note}",
        "",
        *where_the_time_goes(by_name),
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in info.items()),
        f"| Load average (1/5/15 min) before / after | {load_before}; {load_after} |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="rounds (default 7)")
    parser.add_argument(
        "--matrix",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time the whole matrix tier once (default: yes, if present)",
    )
    parser.add_argument(
        "--worktree",
        action="store_true",
        help="snapshot the working tree, uncommitted changes included",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    command = "python benchmarks/generation.py" + (f" --runs {args.runs}" if args.runs != 7 else "")
    if not args.matrix:
        command += " --no-matrix"
    if args.worktree:
        command += " --worktree"

    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="svcforge-bench-") as tmp_name:
        tmp = Path(tmp_name)
        settings = tmp / "copier-settings.yml"
        settings.write_text("{}\n")  # a user's copier settings must not leak in
        env = {**os.environ, **GIT_ENV, "COPIER_SETTINGS_PATH": str(settings)}
        svcforge, commit = snapshot_svcforge(tmp / "svcforge", args.worktree)
        reference = make_reference(tmp / "reference")
        svc_base = project_from(svcforge, tmp / "svc-base", env, "1.0.0")
        ref_base = project_from(reference, tmp / "ref-base", env, "1.0.0")

        measures = [
            Measure(
                "svcforge copy",
                "svcforge",
                "copier copy --trust --defaults svcforge DEST",
                copy_measure(svcforge, env),
            ),
            Measure(
                "reference copy",
                "reference",
                "copier copy --trust --defaults reference DEST",
                copy_measure(reference, env),
            ),
            Measure(
                "svcforge update",
                "svcforge",
                "copier update --trust --defaults (1.0.0 → 1.0.1)",
                update_measure(svc_base, env),
            ),
            Measure(
                "reference update",
                "reference",
                "copier update --trust --defaults (1.0.0 → 1.0.1)",
                update_measure(ref_base, env),
            ),
            Measure(
                "svcforge new",
                "svcforge",
                "svcforge new DEST --defaults",
                svcforge_new_measure(env),
            ),
            Measure(
                "floor: Python + import copier",
                "floor",
                "python -c 'import copier'",
                command_measure([sys.executable, "-c", "import copier"], env),
            ),
            Measure(
                "floor: Python + import copier, no bytecode cache",
                "floor",
                "PYTHONPYCACHEPREFIX=<empty dir> python -c 'import copier'",
                command_measure(
                    [sys.executable, "-c", "import copier"],
                    {
                        **env,
                        "PYTHONPYCACHEPREFIX": str(tmp / "no-pycache"),
                        "PYTHONDONTWRITEBYTECODE": "1",
                    },
                ),
            ),
            Measure(
                "floor: git clone of the template",
                "floor",
                "git clone --no-checkout --filter=blob:none svcforge",
                command_measure(
                    [
                        "git",
                        "clone",
                        "-q",
                        "--no-checkout",
                        "--filter=blob:none",
                        str(svcforge),
                        "clone",
                    ],
                    env,
                ),
            ),
        ]
        for round_number in range(1, args.runs + 1):
            for measure in measures:
                scratch = Path(tempfile.mkdtemp(dir=tmp, prefix="run-"))
                measure.times.append(measure.run(scratch))
                shutil.rmtree(scratch, ignore_errors=True)
            print(
                f"round {round_number}/{args.runs}: "
                + ", ".join(f"{m.name} {m.times[-1]:.2f}s" for m in measures[:5]),
                flush=True,
            )

        matrix_note = "not measured (--no-matrix)."
        if args.matrix:
            print("matrix tier: running once (this takes minutes)", flush=True)
            scratch = Path(tempfile.mkdtemp(dir=tmp, prefix="matrix-"))
            tier = matrix_tier(env, scratch)
            if tier is None:
                matrix_note = "not measured: this checkout has no matrix tier (svcforge/tier.py)."
            else:
                label, seconds, outcome = tier
                measures.append(
                    Measure(
                        "matrix tier (every combination)",
                        "svcforge",
                        label,
                        lambda _: seconds,
                        [seconds],
                    )
                )
                matrix_note = (
                    f"`{label}` ran once in {seconds:.0f} s ({seconds / 60:.1f} min; budget"
                    f" 15 min): {outcome}."
                )

    info = machine()
    text = report(
        measures,
        runs=args.runs,
        command=command,
        commit=commit,
        info=info,
        load_before=load_before,
        load_after=load_average(),
        matrix_note=matrix_note,
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
