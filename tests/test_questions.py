"""The question set: validation, derived names, the answers file and deterministic output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from svcforge import TEMPLATE_ROOT
from svcforge.envs import find_python

from .conftest import Render

COPIER = str(Path(sys.executable).parent / "copier")


def copier_copy(dst: Path, *data: str) -> subprocess.CompletedProcess[str]:
    """``copier copy`` exactly as a user runs it, non-interactively."""
    args = [COPIER, "copy", "--trust", "--defaults", "--vcs-ref", "HEAD"]
    for item in data:
        args += ["--data", item]
    return subprocess.run(
        [*args, str(TEMPLATE_ROOT), str(dst)], capture_output=True, text=True, check=False
    )


INVALID_ANSWERS = [
    ("project_name=", "project_name must not be empty"),
    ("project_name=9 Lives", "project_name must start with a letter"),
    ('project_name=Say "hi"', "must not contain double quotes"),
    ("project_name=" + "x" * 61, "at most 60 characters"),
    ("project_slug=Billing_API", "is not kebab-case"),
    ("project_slug=billing--api", "is not kebab-case"),
    ("project_slug=-billing", "is not kebab-case"),
    ("project_slug=" + "a" * 41, "at most 40 characters"),
    ("package_name=Billing", "is not a valid package name"),
    ("package_name=1billing", "is not a valid package name"),
    ("package_name=billing-api", "is not a valid package name"),
    ("package_name=class", "is a Python keyword"),
    ("package_name=json", 'would shadow the module "json"'),
    ("package_name=logging", 'would shadow the module "logging"'),
    ("package_name=fastapi", 'would shadow the module "fastapi"'),
    ("package_name=tests", 'would shadow the module "tests"'),
    ("author_email=not-an-email", "is not a valid e-mail address"),
    ("author_email=a@b", "is not a valid e-mail address"),
    ("description=", "description must not be empty"),
    ("framework=django", "'django' is not in ['fastapi', 'flask']"),
    ("python_version=3.10", "'3.10' is not in ['3.11', '3.12', '3.13']"),
    ("ci=jenkins", "'jenkins' is not in"),
    # A long name makes the derived slug too long: the default is validated too.
    (
        "project_name=" + "Extremely Long Service Name For Integration Tests",
        "at most 40 characters",
    ),
]


@pytest.mark.parametrize(
    ("answer", "message"), INVALID_ANSWERS, ids=[a for a, _ in INVALID_ANSWERS]
)
def test_invalid_answer_is_rejected_and_nothing_is_written(
    tmp_path: Path, answer: str, message: str
) -> None:
    dst = tmp_path / "service"
    result = copier_copy(dst, answer)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert not dst.exists(), f"{answer!r} wrote {sorted(p.name for p in dst.iterdir())}"


def test_existing_destination_is_left_untouched_on_invalid_answer(tmp_path: Path) -> None:
    dst = tmp_path / "service"
    dst.mkdir()
    (dst / "notes.txt").write_text("keep me\n")
    result = copier_copy(dst, "project_slug=Nope")
    assert result.returncode != 0
    assert sorted(p.name for p in dst.iterdir()) == ["notes.txt"]
    assert (dst / "notes.txt").read_text() == "keep me\n"


@pytest.mark.parametrize(
    ("name", "slug", "package"),
    [
        ("My Service", "my-service", "my_service"),
        ("Billing API v2", "billing-api-v2", "billing_api_v2"),
        ("Orders -- Service!", "orders-service", "orders_service"),
        ("Café Orders", "caf-orders", "caf_orders"),
    ],
)
def test_slug_and_package_are_derived_from_the_name(
    tmp_path: Path, name: str, slug: str, package: str
) -> None:
    dst = tmp_path / "service"
    result = copier_copy(dst, f"project_name={name}")
    assert result.returncode == 0, result.stderr
    answers = yaml.safe_load((dst / ".copier-answers.yml").read_text())
    assert (answers["project_slug"], answers["package_name"]) == (slug, package)
    assert (dst / "src" / package / "app.py").is_file()


def test_answers_file_records_answers_and_template_version(rendered: Render) -> None:
    project = rendered(framework="flask", project_name="Answers Check")
    text = (project / ".copier-answers.yml").read_text()
    assert text.startswith("# Changes here will be overwritten by Copier")
    answers = yaml.safe_load(text)
    assert answers["_src_path"] == str(TEMPLATE_ROOT)
    assert answers["_commit"], "no _commit: copier update could not work"
    assert answers["framework"] == "flask"
    assert answers["project_slug"] == "answers-check"
    public = {k for k in answers if not k.startswith("_")}
    assert public == {
        "project_name", "project_slug", "package_name", "description", "author_name",
        "author_email", "framework", "python_version", "metrics", "tracing", "kubernetes", "ci",
    }  # fmt: skip
    # computed values are never recorded
    assert "reserved_module_names" not in answers
    assert "python_keywords" not in answers


def test_reserved_names_cover_every_stdlib_module() -> None:
    config = yaml.safe_load((TEMPLATE_ROOT / "copier.yml").read_text())
    default = config["reserved_module_names"]["default"]  # YAML text, parsed by Copier
    reserved = set(yaml.safe_load(default) if isinstance(default, str) else default)
    checked = []
    for version in ("3.11", "3.12", "3.13"):
        python = find_python(version)
        if python is None:
            continue
        names = json.loads(
            subprocess.check_output(
                [
                    python,
                    "-c",
                    "import sys, json; print(json.dumps(sorted(sys.stdlib_module_names)))",
                ]
            )
        )
        missing = {n for n in names if not n.startswith("_")} - reserved
        assert not missing, f"Python {version} stdlib modules missing from copier.yml: {missing}"
        checked.append(version)
    assert "3.11" in checked


def tree(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("framework", ["fastapi", "flask"])
def test_rendering_twice_gives_identical_trees(tmp_path: Path, framework: str) -> None:
    from svcforge.render import render

    first = tree(render(tmp_path / "a" / "svc", {"framework": framework}))
    second = tree(render(tmp_path / "b" / "svc", {"framework": framework}))
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=TEMPLATE_ROOT, capture_output=True, text=True
    ).stdout.strip()
    if dirty:
        # Copier snapshots a dirty template as a new commit per render: only _commit
        # may differ, and only then (CI renders a clean clone, where it must not).
        for files in (first, second):
            answers = files[".copier-answers.yml"].decode()
            files[".copier-answers.yml"] = re.sub(r"_commit: .*", "_commit: X", answers).encode()
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], f"{name} differs between two renders"


@pytest.mark.parametrize(
    "answers",
    [
        {"framework": "fastapi"},
        {"framework": "flask"},
        {
            "framework": "fastapi",
            "metrics": False,
            "tracing": False,
            "kubernetes": False,
            "ci": "none",
        },
        {
            "framework": "flask",
            "metrics": False,
            "tracing": False,
            "kubernetes": False,
            "ci": "gitlab",
        },
    ],
    ids=["fastapi-full", "flask-full", "fastapi-minimal", "flask-minimal"],
)
def test_rendered_files_carry_no_template_noise(
    rendered: Render, answers: dict[str, object]
) -> None:
    project = rendered(**answers)
    for relative, content in tree(project).items():
        text = content.decode()
        if not text:  # marker files such as py.typed
            continue
        # GitHub's ${{ ... }} and Prometheus' {{ $value }} are meant to be there.
        leftover = re.sub(r"\$\{\{.*?\}\}|\{\{ *\$[^}]*\}\}", "", text)
        assert "{{" not in leftover, f"unrendered Jinja in {relative}"
        assert "{%" not in leftover, f"unrendered Jinja in {relative}"
        assert text.endswith("\n"), f"{relative} does not end with a newline"
        assert not text.endswith("\n\n"), f"{relative} ends with blank lines"
        for number, line in enumerate(text.splitlines(), 1):
            assert line == line.rstrip(), f"trailing whitespace in {relative}:{number}"
        assert "\n\n\n\n" not in text, f"runs of blank lines in {relative}"
