"""`copier update` across real releases keeps a team's edits and applies template fixes.

A temporary git repository is built from the template's working tree: the tree as it is
now is tagged ``v1.0.0``; a second commit makes a template fix (a new ``.gitignore``
entry), renames the ``author_email`` question to ``owner_email`` with a ``_migrations``
entry (``hooks/migrate.py``), and is tagged ``v1.1.0``. Projects are generated from
``v1.0.0`` (N-1), committed, edited like a team would, then updated to ``v1.1.0``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from svcforge.cli import app
from svcforge.tier import snapshot_template

COPIER = str(Path(sys.executable).parent / "copier")
TEAM_EMAIL = "orders-team@corp.example"
FIX_LINE = "# Profiler output (template fix in v1.1.0)"
IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}
MIGRATION = """\
_migrations:
  # v1.1.0 renamed the question author_email to owner_email: carry the team's answer over.
  - version: v1.1.0
    when: "{{ _stage == 'before' }}"
    command:
      - "{{ _copier_python }}"
      - "{{ _copier_conf.src_path }}/hooks/migrate.py"
      - rename-answer
      - author_email
      - owner_email
      - --answers-file
      - "{{ _copier_conf.answers_file }}"
"""


def sh(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, check=False, env={**os.environ, **IDENTITY}
    )
    if check:
        assert result.returncode == 0, (
            f"{' '.join(args)} failed ({result.returncode}) in {cwd}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
    return result


def gitignore_template(root: Path) -> Path:
    for name in (".gitignore.jinja", ".gitignore"):
        if (root / "template" / name).exists():
            return root / "template" / name
    raise AssertionError("the template has no .gitignore")


@dataclass(frozen=True)
class Releases:
    repo: Path


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Releases:
    repo = snapshot_template(tmp_path_factory.mktemp("template-repo") / "svcforge")
    sh(["git", "init", "-q", "-b", "main"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "commit", "-q", "-m", "release 1.0.0"], repo)
    sh(["git", "tag", "v1.0.0"], repo)

    # v1.1.0: a fix in a file the team does not touch...
    ignore = gitignore_template(repo)
    text = ignore.read_text()
    assert "\n*.log\n" in text
    ignore.write_text(text.replace("\n*.log\n", f"\n*.log\n{FIX_LINE}\n*.prof\n", 1))
    # ...and a renamed question, with the migration that keeps the recorded answer.
    renamed = 0
    for path in [
        repo / "copier.yml",
        *(repo / "template").rglob("*"),
        *(repo / "includes").rglob("*"),
    ]:
        if path.is_file():
            content = path.read_text()
            new = re.sub(r"\bauthor_email\b", "owner_email", content)
            renamed += content != new
            path.write_text(new)
    assert renamed >= 2, "author_email is used by copier.yml and at least one template file"
    config = repo / "copier.yml"
    assert "\n_migrations: []\n" in config.read_text()
    config.write_text(config.read_text().replace("\n_migrations: []\n", "\n" + MIGRATION))
    sh(
        ["git", "commit", "-q", "-am", "release 1.1.0: ignore *.prof; author_email -> owner_email"],
        repo,
    )
    sh(["git", "tag", "v1.1.0"], repo)
    return Releases(repo)


def generate(releases: Releases, dst: Path, *data: str) -> Path:
    """Generate from the previous release (N-1), as the user's CLI would, and commit."""
    args = [COPIER, "copy", "--trust", "--defaults", "--quiet", "--vcs-ref", "v1.0.0"]
    for item in ("project_name=Orders API", f"author_email={TEAM_EMAIL}", *data):
        args += ["--data", item]
    sh([*args, str(releases.repo), str(dst)], dst.parent)
    sh(["git", "init", "-q"], dst)  # as the message after copy tells the user
    sh(["git", "add", "-A"], dst)
    sh(["git", "commit", "-q", "-m", "Generate orders-api from svcforge 1.0.0"], dst)
    return dst


def replace_once(path: Path, pattern: str, replacement: str) -> None:
    text = path.read_text()
    new, count = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} not found in {path}"
    path.write_text(new)


def team_edits(project: Path) -> dict[Path, str]:
    """Typical edits after generation; returns each edited file and a line it must keep."""
    package = project / "src" / "orders_api"
    kept: dict[Path, str] = {}

    router = package / "orders.py"
    router.write_text('"""Orders: the team\'s first own module."""\n\nORDERS_PAGE_SIZE = 50\n')
    kept[router] = "ORDERS_PAGE_SIZE = 50"

    settings = package / "settings.py"
    replace_once(settings, r"^(    model_config = .*\n)", r"\1\n    orders_page_size: int = 50\n")
    kept[settings] = "    orders_page_size: int = 50"

    readme = project / "README.md"
    replace_once(readme, r"\A(# .*\n)", r"\1\nOwned by the orders team; on-call: #orders-oncall.\n")
    kept[readme] = "Owned by the orders team; on-call: #orders-oncall."

    overlay = project / "deploy" / "k8s" / "overlays" / "prod" / "hpa.yaml"
    if overlay.exists():  # kubernetes on
        replace_once(overlay, r"maxReplicas: \d+", "maxReplicas: 42")
        kept[overlay] = "maxReplicas: 42"
    return kept


def conflict_markers(project: Path) -> list[str]:
    found = []
    for path in project.rglob("*"):
        if ".git" in path.parts or not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if re.search(r"^(<<<<<<<|>>>>>>>)( |$)", text, re.MULTILINE):
            found.append(str(path.relative_to(project)))
    return found


def porcelain(project: Path) -> list[str]:
    return sh(
        ["git", "status", "--porcelain", "--untracked-files=all"], project
    ).stdout.splitlines()


@pytest.mark.parametrize(
    "data",
    [
        pytest.param((), id="fastapi-full"),
        pytest.param(
            ("framework=flask", "kubernetes=false", "metrics=false", "ci=gitlab"), id="flask-lean"
        ),
    ],
)
def test_update_keeps_team_edits_and_applies_the_fix(
    releases: Releases, tmp_path: Path, data: tuple[str, ...]
) -> None:
    project = generate(releases, tmp_path / "orders-api", *data)
    kept = team_edits(project)
    if "kubernetes=false" not in data:
        assert any("overlays" in str(path) for path in kept), "the prod overlay was tuned"
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-q", "-m", "Team edits"], project)

    # The user's command, exactly.
    sh([COPIER, "update", "--trust", "--defaults", "--quiet"], project)

    for path, line in kept.items():
        assert line in path.read_text(), f"the team's edit of {path.name} was lost"
    assert FIX_LINE in (project / ".gitignore").read_text(), "the template fix was not applied"
    assert not list(project.rglob("*.rej")), "copier left rejected hunks"
    assert conflict_markers(project) == []
    answers = (project / ".copier-answers.yml").read_text()
    assert "_commit: v1.1.0" in answers
    assert f"owner_email: {TEAM_EMAIL}" in answers, "the migration kept the renamed answer"
    assert "author_email" not in answers
    assert TEAM_EMAIL in (project / "pyproject.toml").read_text()
    changed = {line[3:] for line in porcelain(project)}
    assert changed == {".gitignore", ".copier-answers.yml"}, changed


def test_overlapping_edit_gives_inline_conflict_markers(releases: Releases, tmp_path: Path) -> None:
    project = generate(releases, tmp_path / "orders-api", "kubernetes=false")
    replace_once(
        project / ".gitignore", r"^\*\.log\n", "*.log\n# Team: keep local traces out\n*.trace\n"
    )
    sh(["git", "commit", "-q", "-am", "Ignore traces"], project)

    result = CliRunner().invoke(app, ["update", str(project)])

    assert result.exit_code == 1, result.output
    assert "CONFLICTS" in result.output
    assert ".gitignore" in result.output
    status = porcelain(project)
    assert "UU .gitignore" in status, status
    text = (project / ".gitignore").read_text()
    assert conflict_markers(project) == [".gitignore"]
    assert "*.trace" in text, "the team's side is kept"
    assert FIX_LINE in text, "the template's side is shown"
    assert not list(project.rglob("*.rej"))


def test_migration_needs_trust(releases: Releases, tmp_path: Path) -> None:
    project = generate(releases, tmp_path / "orders-api", "kubernetes=false", "ci=none")
    result = sh([COPIER, "update", "--defaults", "--quiet"], project, check=False)
    assert result.returncode == 4, result.stderr
    assert porcelain(project) == []
    assert "_commit: v1.0.0" in (project / ".copier-answers.yml").read_text()


def test_check_update_and_recopy(releases: Releases, tmp_path: Path) -> None:
    project = generate(releases, tmp_path / "orders-api", "kubernetes=false", "ci=none")
    assert sh([COPIER, "check-update", "--quiet"], project, check=False).returncode == 2
    plain = sh([COPIER, "check-update"], project).stdout + ""
    assert "v1.1.0" in plain or "1.1.0" in plain, plain

    report = CliRunner().invoke(app, ["update", str(project)])
    assert report.exit_code == 0, report.output
    assert "Updated from template v1.0.0 to v1.1.0" in report.output
    assert ".gitignore" in report.output
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-q", "-m", "Update to 1.1.0"], project)
    assert sh([COPIER, "check-update", "--quiet"], project, check=False).returncode == 0

    # recopy: a fresh render with the recorded answers; the team's own files stay.
    (project / "src" / "orders_api" / "orders.py").write_text("ORDERS = []\n")
    settings = project / "src" / "orders_api" / "settings.py"
    pristine = settings.read_text()
    settings.write_text(pristine + "# local experiment\n")
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-q", "-m", "More edits"], project)
    sh([COPIER, "recopy", "--trust", "--defaults", "--overwrite", "--quiet"], project)
    assert settings.read_text() == pristine, "recopy re-renders template files"
    assert (project / "src" / "orders_api" / "orders.py").read_text() == "ORDERS = []\n"
    answers = (project / ".copier-answers.yml").read_text()
    assert f"owner_email: {TEAM_EMAIL}" in answers
    assert "_commit: v1.1.0" in answers


def test_svcforge_update_refuses_a_dirty_tree(releases: Releases, tmp_path: Path) -> None:
    project = generate(releases, tmp_path / "orders-api", "kubernetes=false", "ci=none")
    (project / "notes.txt").write_text("not committed\n")
    result = CliRunner().invoke(app, ["update", str(project)])
    assert result.exit_code == 2
    assert "uncommitted changes" in result.output
    assert "notes.txt" in result.output
    assert "Traceback" not in result.output
    assert "_commit: v1.0.0" in (project / ".copier-answers.yml").read_text()

    shutil.rmtree(project / ".git")
    result = CliRunner().invoke(app, ["update", str(project)])
    assert result.exit_code == 2
    assert "not a git repository" in result.output


@pytest.fixture
def committed_project(rendered, tmp_path: Path) -> Path:
    project = tmp_path / "svc"
    shutil.copytree(rendered(framework="fastapi"), project)
    shutil.rmtree(project / ".git", ignore_errors=True)
    sh(["git", "init", "-q"], project)
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-q", "-m", "Generate"], project)
    return project


def test_project_tools_leave_the_tree_clean(committed_project: Path, project_env) -> None:
    """Everything the project's tools write is ignored: update never finds a dirty tree."""
    project = committed_project
    env = project_env(project, "3.11")
    environ = env.environ(project)
    for args in (
        [env.exe("ruff"), "check", "."],
        [env.exe("ruff"), "format", "--check", "."],
        [env.exe("mypy")],
        [env.exe("python"), "-m", "pytest", "-q"],
        [env.exe("python"), "-m", "compileall", "-q", "src", "tests"],
    ):
        subprocess.run(args, cwd=project, env=environ, capture_output=True, check=False)
    (project / "build").mkdir()
    (project / ".venv").mkdir()
    (project / "server.log").write_text("log\n")
    leftovers = [
        p for p in (".mypy_cache", ".pytest_cache", ".ruff_cache") if (project / p).exists()
    ]
    assert leftovers, "the tools ran and wrote their caches"
    assert porcelain(project) == []


def test_pre_commit_catches_conflict_markers_and_rejects(committed_project: Path) -> None:
    project = committed_project
    pre_commit = str(Path(sys.executable).parent / "pre-commit")
    hooks = ["no-merge-conflict-markers", "no-rejected-hunks"]
    home = {"PRE_COMMIT_HOME": str(project.parent / "pre-commit-home")}

    def run_hook(hook: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [pre_commit, "run", hook, "--all-files"],
            cwd=project,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **IDENTITY, **home},
        )

    for hook in hooks:
        assert run_hook(hook).returncode == 0, run_hook(hook).stdout

    readme = project / "README.md"
    readme.write_text(
        readme.read_text()
        + "<<<<<<< before updating\nours\n=======\ntheirs\n>>>>>>> after updating\n"
    )
    (project / "settings.py.rej").write_text("@@ -1 +1 @@\n-a\n+b\n")
    sh(["git", "add", "-A"], project)
    conflict = run_hook("no-merge-conflict-markers")
    assert conflict.returncode == 1
    assert "README.md" in conflict.stdout
    reject = run_hook("no-rejected-hunks")
    assert reject.returncode == 1
    assert "settings.py.rej" in reject.stdout


def test_changelog_releases_are_pep440_and_match_the_package_version() -> None:
    import tomllib

    from packaging.version import Version

    from svcforge import TEMPLATE_ROOT, __version__

    text = (TEMPLATE_ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in text
    headings = re.findall(r"^## \[(\d[^\]]*)\] - (\d{4}-\d{2}-\d{2})$", text, re.MULTILINE)
    assert headings, "no released version in CHANGELOG.md"
    versions = [Version(version) for version, _ in headings]
    assert [str(v) for v in versions] == [version for version, _ in headings], "normalised"
    assert not any(v.is_prerelease or v.is_devrelease for v in versions)
    assert versions == sorted(versions, reverse=True)
    dates = [date for _, date in headings]
    assert dates == sorted(dates, reverse=True)
    project = tomllib.loads((TEMPLATE_ROOT / "pyproject.toml").read_text())["project"]
    assert str(versions[0]) == project["version"] == __version__
    for version, _ in headings:
        assert f"\n[{version}]: " in text, f"no link for {version}"


def test_every_task_is_copy_only_and_no_formatter_runs() -> None:
    """Updates render the old and new release in temporary dirs: tasks must not run there."""
    import yaml

    from svcforge import TEMPLATE_ROOT

    config = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    tasks = config.get("_tasks") or []
    for task in tasks:
        assert isinstance(task, dict), f"unguarded task: {task!r}"
        assert task.get("when") == "{{ _copier_operation == 'copy' }}", task
        command = (
            " ".join(task["command"]) if isinstance(task["command"], list) else task["command"]
        )
        for formatter in ("ruff format", "black", "isort", "prettier", "mv ", "git mv"):
            assert formatter not in command, f"{formatter!r} in a task: {command}"
    for migration in config.get("_migrations") or []:
        assert "version" in migration, (
            f"a migration without a version runs on every update: {migration}"
        )


def test_migrate_hook_renames_only_the_key_and_is_idempotent(tmp_path: Path) -> None:
    from svcforge import TEMPLATE_ROOT

    answers = tmp_path / ".copier-answers.yml"
    original = "_commit: v1.0.0\nauthor_email: a@b.example\nauthor_name: T\nnote: author_email\n"
    answers.write_text(original)
    hook = [sys.executable, str(TEMPLATE_ROOT / "hooks" / "migrate.py"), "rename-answer"]
    sh([*hook, "author_email", "owner_email", "--answers-file", str(answers)], tmp_path)
    assert answers.read_text() == original.replace("author_email: a@b", "owner_email: a@b")
    migrated = answers.read_text()
    sh([*hook, "author_email", "owner_email", "--answers-file", str(answers)], tmp_path)
    assert answers.read_text() == migrated  # second run: nothing to do
    answers.write_text(migrated + "author_email: c@d.example\n")
    clash = sh(
        [*hook, "author_email", "owner_email", "--answers-file", str(answers)],
        tmp_path,
        check=False,
    )
    assert clash.returncode != 0
    assert "has both" in clash.stderr
