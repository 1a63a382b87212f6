"""The ``svcforge`` command line: new, update, check and matrix."""

from __future__ import annotations

import os
import shutil
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from . import TEMPLATE_ROOT
from .matrix import GITHUB_MAX_JOBS, Template, _cast_to_bool, github_matrix, select_shard, to_json
from .render import render

app = typer.Typer(
    help="Start and maintain production-ready Python web services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

#: Non-interactive starting points; --framework and --data override them.
PRESETS: dict[str, dict[str, Any]] = {
    "minimal": {"metrics": False, "tracing": False, "kubernetes": False, "ci": "none"},
    "full": {"metrics": True, "tracing": True, "kubernetes": True, "ci": "github"},
}


class Preset(StrEnum):
    minimal = "minimal"
    full = "full"


class Format(StrEnum):
    table = "table"
    json = "json"
    data = "data"


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def parse_data(pairs: list[str], template: Template) -> dict[str, Any]:
    """``key=value`` answers, typed and checked against the questions of copier.yml."""
    questions = {q.name: q for q in template.questions if q.when is not False}
    answers: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise fail(f'--data "{pair}" is not key=value (e.g. --data framework=flask)')
        question = questions.get(key)
        if question is None:
            raise fail(f'--data: unknown question "{key}"; known: {", ".join(sorted(questions))}')
        value: Any = raw
        if question.type == "bool":
            if raw.strip().lower() not in {"true", "false", "yes", "no", "on", "off", "1", "0"}:
                raise fail(f'--data {key}="{raw}": expected true or false')
            value = _cast_to_bool(raw)
        elif question.choices is not None:
            allowed = [str(choice.value) for choice in question.choices]
            if raw not in allowed:
                raise fail(f'--data {key}="{raw}" is not one of: {", ".join(allowed)}')
        answers[key] = value
    return answers


def _copier_error(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[-1] if "Traceback" in text else text


def _discard(dest: Path, created: bool) -> None:
    """Leave DEST as it was before a failed render: absent, or empty."""
    if created:
        shutil.rmtree(dest, ignore_errors=True)
    elif dest.is_dir():
        for child in dest.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


@app.callback()
def main() -> None:
    """svcforge: a Copier template for Python web services, and its tools."""


@app.command()
def new(
    dest: Annotated[Path, typer.Argument(help="Directory to create the service in (new or empty)")],
    framework: Annotated[
        str | None, typer.Option(help="fastapi or flask (asked interactively if omitted)")
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option("--data", "-d", help="An answer as key=value (repeatable)"),
    ] = None,
    preset: Annotated[
        Preset | None,
        typer.Option(
            help="minimal: no metrics, tracing, Kubernetes, CI; full: all. Implies --defaults"
        ),
    ] = None,
    defaults: Annotated[bool, typer.Option(help="Use default answers, ask nothing")] = False,
    vcs_ref: Annotated[
        str | None,
        typer.Option(help="Template git ref (default: latest release; HEAD = working tree)"),
    ] = None,
) -> None:
    """Generate a new service into DEST (interactive on a terminal)."""
    template = Template()
    answers: dict[str, Any] = dict(PRESETS[preset.value]) if preset else {}
    answers |= parse_data([f"framework={framework}"] if framework else [], template)
    answers |= parse_data(data or [], template)
    interactive = not defaults and preset is None
    if interactive and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise fail(
            "not a terminal: answer with --defaults, --preset minimal|full and --data key=value"
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise fail(f"{dest} already exists and is not empty: choose a new directory")
    created = not dest.exists()
    try:
        render(dest, answers, defaults=not interactive, quiet=False, vcs_ref=vcs_ref)
    except (KeyboardInterrupt, EOFError):
        _discard(dest, created)
        raise fail("cancelled: nothing was written", 130) from None
    except Exception as error:  # copier raises ValueError, UserMessageError, ...
        _discard(dest, created)
        raise fail(f"{_copier_error(error)}\nnothing was written to {dest}") from None
    typer.echo(f"created {dest}")


@app.command()
def update(
    path: Annotated[Path, typer.Argument(help="The generated project")] = Path("."),
    data: Annotated[
        list[str] | None,
        typer.Option("--data", "-d", help="Change an answer: key=value (repeatable)"),
    ] = None,
    vcs_ref: Annotated[
        str | None, typer.Option(help="Template git ref (default: latest release)")
    ] = None,
) -> None:
    """Pull the template's latest release into PATH, keeping the team's edits."""
    from .update import UpdateRefused, update_project

    answers = parse_data(data or [], Template())
    try:
        report = update_project(path, data=answers, vcs_ref=vcs_ref)
    except UpdateRefused as error:
        raise fail(f"update refused: {error}") from None
    except Exception as error:
        raise fail(f"update failed: {_copier_error(error)}") from None
    typer.echo(report.render())
    if report.conflicts or report.rejects:
        raise typer.Exit(1)


@app.command()
def check(
    path: Annotated[Path, typer.Argument(help="The generated project")],
    env: Annotated[
        Path | None,
        typer.Option(help="Virtual environment with the project's dev dependencies"),
    ] = None,
    install: Annotated[
        bool,
        typer.Option(help="Create PATH/.venv with the project's dev dependencies if missing"),
    ] = False,
    strict: Annotated[
        bool | None,
        typer.Option(help="Treat a check skipped for lack of a tool as a failure (default: CI)"),
    ] = None,
) -> None:
    """Run PATH's verifications: ruff, mypy, pytest, hadolint, manifests, CI workflow."""
    from .check import Tools, check_project, install_dev_env, summary

    if not (path / "pyproject.toml").is_file():
        raise fail(f"{path} is not a generated project (no pyproject.toml)")
    if env is not None and not (env / "bin" / "python").exists():
        raise fail(f"--env {env} is not a virtual environment (no bin/python)")
    if env is None and not (path / ".venv" / "bin" / "python").exists():
        if not install:
            raise fail(
                f"{path} has no .venv with its dev dependencies: pass --install to create "
                "it, or --env DIR to use an existing environment"
            )
        typer.echo(f"installing {path}/.venv (the project's dev dependencies)...")
        try:
            install_dev_env(path)
        except RuntimeError as error:
            raise fail(str(error)) from None
    if strict is None:
        strict = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    results = check_project(path.resolve(), Tools.for_project(path.resolve(), env))
    text, ok = summary(results, strict=strict)
    typer.echo(text)
    if not ok:
        raise typer.Exit(1)


@app.command()
def matrix(
    output: Annotated[
        Format,
        typer.Option(
            "--format", help="table, json (GitHub Actions include matrix) or data (--data args)"
        ),
    ] = Format.table,
    max_jobs: Annotated[
        int, typer.Option(help="Most jobs in the GitHub matrix (combinations are sharded)")
    ] = GITHUB_MAX_JOBS,
    shard: Annotated[
        str | None, typer.Option(help="Only the combinations of shard K/N of the json output")
    ] = None,
    verify: Annotated[
        bool, typer.Option(help="Render each combination and run its checks; print a table")
    ] = False,
    jobs: Annotated[int, typer.Option(help="Parallel workers for --verify")] = 2,
    config: Annotated[Path, typer.Option(help="copier.yml to read")] = TEMPLATE_ROOT / "copier.yml",
) -> None:
    """Every valid combination of the choice and bool questions of copier.yml."""
    from .matrix import table

    if not config.is_file():
        raise fail(f"{config} does not exist")
    template = Template(config)
    combinations = template.combinations()
    if max_jobs < 1 or max_jobs > GITHUB_MAX_JOBS:
        raise fail(f"--max-jobs must be between 1 and {GITHUB_MAX_JOBS}")
    if shard is not None:
        try:
            combinations = select_shard(combinations, shard, max_jobs)
        except ValueError as error:
            raise fail(str(error)) from None
    if verify:
        from .tier import verify_matrix

        ok = verify_matrix(combinations, jobs=jobs, echo=typer.echo)
        raise typer.Exit(0 if ok else 1)
    if output is Format.json:
        typer.echo(to_json(github_matrix(combinations, max_jobs)))
    elif output is Format.data:
        for combination in combinations:
            typer.echo(" ".join(combination.data_args()))
    else:
        typer.echo(table(combinations, template.enumerated))
        typer.echo(f"\n{len(combinations)} combination(s)")
