"""The `svcforge` CLI: new (flags, presets, bad input, a real terminal), check."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from svcforge.check import Tools, _kustomize_command
from svcforge.cli import app

runner = CliRunner()
SVCFORGE = str(Path(sys.executable).parent / "svcforge")


def answers(project: Path) -> dict[str, object]:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def new(*args: str) -> object:
    return runner.invoke(app, ["new", *args, "--vcs-ref", "HEAD"])


def test_new_with_defaults(tmp_path: Path) -> None:
    result = new(str(tmp_path / "svc"), "--defaults")
    assert result.exit_code == 0, result.output
    recorded = answers(tmp_path / "svc")
    assert recorded["framework"] == "fastapi"
    assert recorded["ci"] == "github"
    assert (tmp_path / "svc" / ".github" / "workflows" / "ci.yml").is_file()


def test_new_minimal_preset_leaves_every_feature_out(tmp_path: Path) -> None:
    project = tmp_path / "svc"
    result = new(str(project), "--preset", "minimal", "--framework", "flask")
    assert result.exit_code == 0, result.output
    recorded = answers(project)
    assert recorded["framework"] == "flask"
    assert (recorded["metrics"], recorded["tracing"], recorded["kubernetes"]) == (
        False,
        False,
        False,
    )
    assert recorded["ci"] == "none"
    for absent in (
        "deploy",
        ".github",
        ".gitlab-ci.yml",
        "src/my_service/metrics.py",
        "src/my_service/tracing.py",
    ):
        assert not (project / absent).exists(), absent


def test_new_full_preset_with_data_overrides(tmp_path: Path) -> None:
    project = tmp_path / "svc"
    result = new(
        str(project), "--preset", "full", "--data", "ci=gitlab", "-d", "project_name=Billing API"
    )
    assert result.exit_code == 0, result.output
    recorded = answers(project)
    assert recorded["metrics"] is True
    assert recorded["kubernetes"] is True
    assert recorded["ci"] == "gitlab"
    assert recorded["package_name"] == "billing_api"
    assert (project / ".gitlab-ci.yml").is_file()
    assert not (project / ".github").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "ci=jenkins"], 'ci="jenkins" is not one of: github, gitlab, none'),
        (["--data", "metrics=maybe"], 'metrics="maybe": expected true or false'),
        (["--data", "colour=blue"], 'unknown question "colour"'),
        (["--data", "framework"], "is not key=value"),
        (["--framework", "django"], 'framework="django" is not one of: fastapi, flask'),
        (["--data", "project_slug=Bad Slug"], 'project_slug "Bad Slug" is not kebab-case'),
        (["--data", "package_name=json"], "would shadow the module"),
    ],
)
def test_new_rejects_bad_answers_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    dest = tmp_path / "svc"
    result = new(str(dest), "--defaults", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_new_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    dest = tmp_path / "svc"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine\n")
    result = new(str(dest), "--defaults")
    assert result.exit_code == 2
    assert "already exists and is not empty" in result.output
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]


def test_new_failure_leaves_an_existing_empty_destination_empty(tmp_path: Path) -> None:
    dest = tmp_path / "svc"
    dest.mkdir()
    result = new(str(dest), "--defaults", "--data", "author_email=nobody")
    assert result.exit_code == 2
    assert "is not a valid e-mail address" in result.output
    assert dest.is_dir()
    assert list(dest.iterdir()) == []


def test_new_without_a_terminal_needs_defaults(tmp_path: Path) -> None:
    result = new(str(tmp_path / "svc"))
    assert result.exit_code == 2
    assert "not a terminal" in result.output
    assert not (tmp_path / "svc").exists()


def test_interactive_new_through_a_pseudo_terminal(tmp_path: Path) -> None:
    """Answer Copier's questionary prompts like a person at a terminal would."""
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        SVCFORGE,
        ["new", "svc", "--vcs-ref", "HEAD"],
        cwd=str(tmp_path),
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 120),
    )
    clear = "\x15"  # Ctrl-U: the text prompts are pre-filled with the default
    down, enter = "\x1b[B", "\r"
    try:
        child.expect("Human name")
        child.sendline(clear + "Billing API")
        child.expect("kebab-case")
        child.sendline(clear + "Billing API")  # invalid: the validator answers at once
        child.expect("is not kebab-case")
        child.sendline(clear + "billing")
        child.expect("snake_case")
        child.sendline("")
        for prompt in ("One-line", "Owning team", "Contact e-mail"):
            child.expect(prompt)
            child.sendline("")
        child.expect("Web framework")
        child.send(down + enter)  # flask
        child.expect("Python version")
        child.send(down + enter)  # 3.12
        child.expect("Prometheus")
        child.send("n")
        child.expect("OpenTelemetry")
        child.send("y")
        child.expect("Kubernetes")
        child.send("n")
        child.expect("CI workflow")
        child.send(down + enter)  # gitlab
        child.expect(pexpect.EOF, timeout=120)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    recorded = answers(tmp_path / "svc")
    assert recorded["project_name"] == "Billing API"
    assert recorded["project_slug"] == "billing"
    assert recorded["package_name"] == "billing"
    assert recorded["framework"] == "flask"
    assert recorded["python_version"] == "3.12"
    assert (recorded["metrics"], recorded["tracing"], recorded["kubernetes"]) == (
        False,
        True,
        False,
    )
    assert recorded["ci"] == "gitlab"


def test_check_passes_a_clean_project_and_fails_a_broken_one(
    rendered, project_env, tmp_path: Path
) -> None:
    project = tmp_path / "svc"
    shutil.copytree(
        rendered(framework="flask", metrics=False, tracing=False, kubernetes=False, ci="github"),
        project,
    )
    env = project_env(project, "3.11")
    result = runner.invoke(app, ["check", str(project), "--env", str(env.path), "--strict"])
    assert result.exit_code == 0, result.output
    for name in ("ruff check", "ruff format", "mypy", "pytest", "hadolint", "actionlint"):
        assert any(
            line.startswith(name) and " ok " in line for line in result.output.splitlines()
        ), f"{name} did not pass:\n{result.output}"
    assert "OK: 6 passed, 0 failed, 0 skipped" in result.output

    (project / "src" / "my_service" / "broken.py").write_text("def f(x):\n    return x\n")
    workflow = project / ".github" / "workflows" / "ci.yml"
    workflow.write_text(
        workflow.read_text().replace("runs-on: ubuntu-latest", "runs-on: ${{ matrix.os }}", 1)
    )
    result = runner.invoke(app, ["check", str(project), "--env", str(env.path)])
    assert result.exit_code == 1
    assert "--- mypy failed ---" in result.output
    assert "broken.py" in result.output
    assert "--- actionlint failed ---" in result.output
    assert "FAILED:" in result.output
    assert "Traceback" not in result.output


def test_check_kubernetes_tools_are_run_or_reported_skipped(
    rendered, project_env, tmp_path: Path
) -> None:
    """Never a silent pass: without kustomize the manifests are SKIPPED, and strict fails."""
    project = tmp_path / "svc"
    shutil.copytree(rendered(framework="fastapi", kubernetes=True, ci="gitlab"), project)
    from svcforge.check import kubernetes_checks, workflow_checks

    results = kubernetes_checks(project, Tools())
    if _kustomize_command(Tools()) is None:
        assert [(r.name, r.status) for r in results] == [("kustomize", "skipped")]
        from svcforge.check import summary

        text, ok = summary(results, strict=True)
        assert not ok
        assert "SKIP" in text
    else:
        statuses = {r.name: r.status for r in results}
        for overlay in ("dev", "prod"):
            for check in ("kustomize", "schema", "checkov"):
                name = f"{check} deploy/k8s/overlays/{overlay}"
                assert statuses.get(name) == "passed", (name, results)
    gitlab = workflow_checks(project, Tools())
    assert [(r.name, r.status) for r in gitlab] == [("gitlab-ci schema", "passed")]


def test_check_needs_an_environment_with_the_dev_tools(rendered, tmp_path: Path) -> None:
    project = tmp_path / "svc"
    shutil.copytree(rendered(framework="fastapi", kubernetes=False), project)
    result = runner.invoke(app, ["check", str(project)])
    assert result.exit_code == 2
    assert "has no .venv with its dev dependencies: pass --install" in result.output
    result = runner.invoke(app, ["check", str(project), "--env", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "is not a virtual environment" in result.output


def test_check_rejects_a_path_that_is_not_a_project(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a generated project" in result.output
