"""Generate the options reference page of the docs from ``copier.yml``.

The page is committed as ``docs/reference/options.md`` and ``tests/test_docs.py`` fails
when it no longer matches ``copier.yml``. Regenerate it with::

    .venv/bin/python -m svcforge.options_doc --write
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.nodes
import yaml

from . import TEMPLATE_ROOT

COPIER_YML = TEMPLATE_ROOT / "copier.yml"
OPTIONS_PAGE = TEMPLATE_ROOT / "docs" / "reference" / "options.md"

#: Copier's native types, and the type it infers from a default of each Python type.
_INFERRED_TYPES = {bool: "bool", int: "int", float: "float", str: "str"}


@dataclass(frozen=True)
class Choice:
    value: Any
    label: str
    condition: str = ""  # a choice's own validator: non-empty output disables it


@dataclass(frozen=True)
class Question:
    name: str
    type: str
    help: str
    default: Any
    choices: tuple[Choice, ...] = ()
    when: Any = True
    validator: str = ""
    multiselect: bool = False
    secret: bool = False

    @property
    def computed(self) -> bool:
        """``when: false``: never asked nor recorded, only a value for other templates."""
        return self.when is False or str(self.when).strip().lower() == "false"


@dataclass(frozen=True)
class Migration:
    version: str
    command: str
    when: str = ""


@dataclass
class TemplateSpec:
    settings: dict[str, Any] = field(default_factory=dict)
    questions: list[Question] = field(default_factory=list)
    migrations: list[Migration] = field(default_factory=list)


def _choices(raw: Any) -> tuple[Choice, ...]:
    if not raw:
        return ()
    if isinstance(raw, Mapping):
        items: list[Choice] = []
        for label, value in raw.items():
            if isinstance(value, Mapping):  # {value: ..., validator: ...}
                items.append(Choice(value["value"], str(label), str(value.get("validator", ""))))
            else:
                items.append(Choice(value, str(label)))
        return tuple(items)
    if isinstance(raw, list):
        return tuple(Choice(item, str(item)) for item in raw)
    return (Choice(raw, f"computed from `{raw}`"),)


def load(path: Path = COPIER_YML) -> TemplateSpec:
    """Read the questions, settings and migrations of a ``copier.yml``."""
    data = yaml.safe_load(path.read_text())
    spec = TemplateSpec()
    for key, value in data.items():
        if key.startswith("_"):
            spec.settings[key] = value
            continue
        if not isinstance(value, Mapping):  # short form: `name: default`
            value = {"default": value}
        default = value.get("default")
        type_name = value.get("type") or _INFERRED_TYPES.get(type(default), "yaml")
        spec.questions.append(
            Question(
                name=key,
                type=str(type_name),
                help=str(value.get("help", "")).strip(),
                default=default,
                choices=_choices(value.get("choices")),
                when=value.get("when", True),
                validator=str(value.get("validator", "")),
                multiselect=bool(value.get("multiselect", False)),
                secret=bool(value.get("secret", False)),
            )
        )
    for item in spec.settings.get("_migrations", []) or []:
        if isinstance(item, Mapping):
            command = item.get("command", "")
            if isinstance(command, list):
                command = " ".join(str(part) for part in command)
            spec.migrations.append(
                Migration(str(item.get("version", "")), str(command), str(item.get("when", "")))
            )
        else:
            spec.migrations.append(Migration("", str(item)))
    return spec


_ENV = jinja2.Environment()


def referenced_names(expression: str) -> list[str]:
    """Variables a Jinja template string reads (e.g. a derived default)."""
    try:
        ast = _ENV.parse(expression)
    except jinja2.TemplateSyntaxError:
        return []
    # Walk the tree rather than compile it: Copier's filters are unknown here.
    stored = {node.name for node in ast.find_all(jinja2.nodes.Name) if node.ctx == "store"}
    loaded = {node.name for node in ast.find_all(jinja2.nodes.Name) if node.ctx == "load"}
    return sorted(loaded - stored)


def validation_messages(validator: str) -> list[str]:
    """The error messages of a validator, with ``{{ ... }}`` shown as ``<...>``.

    A validator is a Jinja template whose non-empty output rejects the answer; the
    text between its ``{% if %}``/``{% elif %}`` tags is each message.
    """
    messages = []
    for chunk in re.split(r"{%.*?%}", validator, flags=re.S):
        text = re.sub(r"{{\s*(.*?)\s*}}", lambda m: f"<{m.group(1)}>", chunk)
        text = " ".join(text.split())
        if text:
            messages.append(text)
    return messages


def _code(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    else:
        text = str(value)
    if "`" in text:
        return f"`` {text} ``"
    return f"`{text}`"


def _is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _default_short(question: Question) -> str:
    if question.default is None:
        return "none (must be answered)"
    if _is_template(question.default):
        names = referenced_names(question.default)
        if names:
            return "derived from " + ", ".join(f"`{name}`" for name in names)
        return "computed"
    return _code(question.default)


def _when_text(question: Question) -> str:
    when = question.when
    if when is True or str(when).strip().lower() == "true":
        return "always"
    names = referenced_names(str(when))
    about = " (depends on " + ", ".join(f"`{n}`" for n in names) + ")" if names else ""
    return f"when {_code(when)}{about}"


def _summary_row(question: Question) -> str:
    choices = ", ".join(_code(choice.value) for choice in question.choices) or "any"
    if question.type == "bool" and not question.choices:
        choices = "`true`, `false`"
    when = "always" if _when_text(question) == "always" else "conditional"
    return (
        f"| [`{question.name}`](#{question.name}) | `{question.type}` | "
        f"{_default_short(question)} | {choices} | {when} |"
    )


def _section(question: Question) -> Iterator[str]:
    yield f"### `{question.name}` {{#{question.name}}}"
    yield ""
    if question.help:
        yield question.help if question.help.endswith((".", "?", "!")) else f"{question.help}."
        yield ""
    yield f"- **Type:** `{question.type}`" + (" (several values)" if question.multiselect else "")
    if _is_template(question.default):
        yield f"- **Default:** {_default_short(question)}: {_code(question.default)}"
    else:
        yield f"- **Default:** {_default_short(question)}"
    if question.choices:
        yield "- **Choices:**"
        for choice in question.choices:
            line = f"    - {_code(choice.value)}"
            if choice.label != str(choice.value):
                line += f": {choice.label}"
            if choice.condition:
                line += f" (unavailable when {_code(' '.join(choice.condition.split()))} "
                line += "renders a message)"
            yield line
    elif question.type == "bool":
        yield "- **Choices:** `true`, `false`"
    yield f"- **Asked:** {_when_text(question)}"
    if question.secret:
        yield "- **Secret:** not recorded in `.copier-answers.yml`"
    messages = validation_messages(question.validator)
    if messages:
        yield "- **Rejected with these messages** (`<...>` is the answer or its length):"
        for message in messages:
            yield f"    - {message}"
    yield ""


def render_page(spec: TemplateSpec) -> str:
    """The Markdown of the options reference."""
    asked = [q for q in spec.questions if not q.computed]
    computed = [q for q in spec.questions if q.computed]
    lines = [
        "# Options reference",
        "",
        "<!-- Generated from copier.yml by `python -m svcforge.options_doc --write`;"
        " tests/test_docs.py fails when this page and copier.yml disagree. -->",
        "",
        "Every question of `copier.yml`, in the order Copier asks them. Answer them"
        " interactively, or pass them with `--data name=value` (`copier copy`,"
        " `svcforge new`); `--defaults` takes the default of every question not passed."
        " The answers are recorded in the generated project's"
        f" `{spec.settings.get('_answers_file', '.copier-answers.yml')}`, which"
        " `copier update` reads back.",
        "",
        "| Question | Type | Default | Choices | Asked |",
        "| --- | --- | --- | --- | --- |",
        *(_summary_row(q) for q in asked),
        "",
        "An invalid answer is rejected with the message listed under its question, and"
        " nothing is written to the destination.",
        "",
        "## Questions",
        "",
    ]
    for question in asked:
        lines.extend(_section(question))
    if computed:
        lines += [
            "## Computed values",
            "",
            "Declared with `when: false`: never asked and not recorded in the answers file;"
            " validators and templates read them.",
            "",
        ]
        for question in computed:
            value = question.default
            if question.type in {"yaml", "json"} and isinstance(value, str):
                value = yaml.safe_load(value)
            size = f" ({len(value)} entries)" if isinstance(value, list) else ""
            lines.append(f"- `{question.name}`: `{question.type}`{size}")
        lines.append("")
    lines += ["## Template settings", "", "| Setting | Value |", "| --- | --- |"]
    for key in ("_min_copier_version", "_subdirectory", "_templates_suffix", "_answers_file"):
        if key in spec.settings:
            lines.append(f"| `{key}` | {_code(spec.settings[key])} |")
    if "_exclude" in spec.settings:
        excluded = ", ".join(_code(item) for item in spec.settings["_exclude"])
        lines.append(f"| `_exclude` | {excluded} |")
    if "_tasks" in spec.settings:
        lines.append(f"| `_tasks` | {len(spec.settings['_tasks'] or [])} task(s) |")
    lines.append("")
    if spec.migrations:
        lines += [
            "## Migrations",
            "",
            "Run by `copier update` when the project moves across the version listed"
            " (see [Upgrading](../upgrading.md)).",
            "",
            "| Version | Command | When |",
            "| --- | --- | --- |",
        ]
        for migration in spec.migrations:
            when = _code(migration.when) if migration.when else "always"
            lines.append(f"| `{migration.version}` | {_code(migration.command)} | {when} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {OPTIONS_PAGE}")
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args(argv)
    page = render_page(load())
    if args.check:
        current = OPTIONS_PAGE.read_text() if OPTIONS_PAGE.exists() else ""
        if current != page:
            print(f"{OPTIONS_PAGE} is stale: run python -m svcforge.options_doc --write")
            return 1
        return 0
    if args.write:
        OPTIONS_PAGE.parent.mkdir(parents=True, exist_ok=True)
        OPTIONS_PAGE.write_text(page)
        return 0
    sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
