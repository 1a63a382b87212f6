"""Every valid answer combination of the template's choice and bool questions.

The combinations are read from ``copier.yml`` itself, never from a hard-coded list:
questions are visited in file order, exactly as Copier asks them, and

- a question whose ``when`` renders false is not asked: it takes its (rendered) default and
  is not part of the combination's answers (Copier would not record it either);
- a choice whose own ``validator`` renders a message is disabled for that combination;
- a question-level ``validator`` that renders a message rejects the combination;
- other questions (free text, computed ``when: false`` values) take their rendered
  defaults, so ``when`` conditions and validators can refer to them.

Expressions are rendered with the same Jinja environment Copier uses (the template's
``_envops`` and the Ansible filters Copier bundles).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2.sandbox import SandboxedEnvironment

from . import TEMPLATE_ROOT

#: GitHub Actions refuses a matrix with more jobs than this.
GITHUB_MAX_JOBS = 256

_FALSE_STRINGS = {"", "0", "false", "no", "n", "off", "none", "null", "~"}


def _cast_to_bool(value: Any) -> bool:
    """Copier's reading of a rendered ``when``: YAML-ish false strings are false."""
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_STRINGS
    return bool(value)


@dataclass(frozen=True)
class Choice:
    label: str
    value: Any
    validator: str | None = None


@dataclass(frozen=True)
class Question:
    name: str
    type: str
    default: Any = None
    when: Any = True
    validator: str | None = None
    choices: tuple[Choice, ...] | None = None

    @property
    def enumerated(self) -> bool:
        """Questions whose every value the matrix tries: bools and choices."""
        return self.type == "bool" or self.choices is not None


@dataclass(frozen=True)
class Combination:
    #: Answers of the enumerated questions that Copier asks for this combination.
    answers: Mapping[str, Any]
    #: Enumerated questions not asked here (their ``when`` is false), with their defaults.
    skipped: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        parts = []
        for key, value in self.answers.items():
            if isinstance(value, bool):
                parts.append(key if value else f"no-{key}")
            else:
                parts.append(str(value))
        return "-".join(parts)

    def data_args(self) -> list[str]:
        """``key=value`` pairs for ``svcforge new --data`` / ``copier copy --data``."""
        return [f"{key}={_yaml_scalar(value)}" for key, value in self.answers.items()]


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _parse_choices(raw: Any) -> tuple[Choice, ...]:
    items: list[tuple[str, Any]]
    if isinstance(raw, Mapping):
        items = [(str(label), value) for label, value in raw.items()]
    else:
        items = []
        for entry in raw:
            if isinstance(entry, list | tuple) and len(entry) == 2:
                items.append((str(entry[0]), entry[1]))
            else:
                items.append((str(entry), entry))
    choices = []
    for label, value in items:
        if isinstance(value, Mapping) and "value" in value:
            choices.append(Choice(label, value["value"], value.get("validator")))
        else:
            choices.append(Choice(label, value))
    return tuple(choices)


class Template:
    """The questions of a ``copier.yml`` and a Jinja environment to evaluate them."""

    def __init__(self, config: Path = TEMPLATE_ROOT / "copier.yml") -> None:
        self.config = config
        data = yaml.safe_load(config.read_text()) or {}
        envops = {k: v for k, v in (data.get("_envops") or {}).items() if k != "undefined"}
        self.env = SandboxedEnvironment(
            extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"], **envops
        )
        self.questions: list[Question] = []
        for name, spec in data.items():
            if name.startswith("_"):
                continue
            if not isinstance(spec, Mapping):  # shorthand `name: default`
                spec = {"default": spec, "type": _infer_type(spec)}
            choices = spec.get("choices")
            self.questions.append(
                Question(
                    name=name,
                    type=str(spec.get("type", _infer_type(spec.get("default")))),
                    default=spec.get("default"),
                    when=spec.get("when", True),
                    validator=spec.get("validator"),
                    choices=_parse_choices(choices) if choices is not None else None,
                )
            )

    def render(self, value: Any, context: Mapping[str, Any]) -> Any:
        """Render a string value as a Jinja template; other values pass through."""
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            return self.env.from_string(value).render(**context)
        return value

    def _default(self, question: Question, context: Mapping[str, Any]) -> Any:
        value = self.render(question.default, context)
        if question.type == "bool":
            return _cast_to_bool(value)
        if question.type in {"yaml", "json"} and isinstance(value, str):
            return yaml.safe_load(value)
        return value

    def _rejects(self, validator: str | None, context: Mapping[str, Any]) -> str:
        if not validator:
            return ""
        return str(self.render(validator, context)).strip()

    def combinations(self) -> list[Combination]:
        """Every valid combination, in the order Copier would offer the answers."""
        return list(self._walk(0, {}, {}, {}))

    def _walk(
        self,
        index: int,
        context: dict[str, Any],
        answers: dict[str, Any],
        skipped: dict[str, Any],
    ) -> Iterator[Combination]:
        if index == len(self.questions):
            yield Combination(dict(answers), dict(skipped))
            return
        question = self.questions[index]
        asked = _cast_to_bool(self.render(question.when, context))
        if not question.enumerated or not asked:
            value = self._default(question, context)
            nested_skipped = skipped
            if question.enumerated:
                nested_skipped = {**skipped, question.name: value}
            yield from self._walk(
                index + 1, {**context, question.name: value}, answers, nested_skipped
            )
            return
        for value, validator in self._candidates(question):
            if self._rejects(validator, context):
                continue  # this choice is disabled by its own validator
            nested = {**context, question.name: value}
            if self._rejects(question.validator, nested):
                continue
            yield from self._walk(index + 1, nested, {**answers, question.name: value}, skipped)

    @staticmethod
    def _candidates(question: Question) -> list[tuple[Any, str | None]]:
        if question.choices is not None:
            return [(choice.value, choice.validator) for choice in question.choices]
        return [(True, None), (False, None)]

    @property
    def enumerated(self) -> list[str]:
        return [question.name for question in self.questions if question.enumerated]


def _infer_type(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, list | dict):
        return "yaml"
    return "str"


def shards(combinations: Sequence[Combination], max_jobs: int) -> list[list[Combination]]:
    """Contiguous, balanced shards: one combination per job until ``max_jobs`` is reached."""
    if max_jobs < 1:
        raise ValueError("max_jobs must be at least 1")
    count = min(len(combinations), max_jobs)
    if count == 0:
        return []
    size, extra = divmod(len(combinations), count)
    result, start = [], 0
    for number in range(count):
        end = start + size + (1 if number < extra else 0)
        result.append(list(combinations[start:end]))
        start = end
    return result


def select_shard(
    combinations: Sequence[Combination], shard: str, max_jobs: int = GITHUB_MAX_JOBS
) -> list[Combination]:
    """The combinations of shard ``"K/N"`` (1-based), as planned by :func:`github_matrix`."""
    try:
        number, total = (int(part) for part in shard.split("/"))
    except ValueError:
        raise ValueError(f'shard must look like "3/12", got "{shard}"') from None
    planned = shards(combinations, max_jobs)
    if total != len(planned) or not 1 <= number <= total:
        raise ValueError(
            f"shard {shard} does not exist: the matrix has {len(planned)} shard(s) "
            f"of at most {math.ceil(len(combinations) / max(len(planned), 1))} combination(s)"
        )
    return planned[number - 1]


def github_matrix(
    combinations: Sequence[Combination], max_jobs: int = GITHUB_MAX_JOBS
) -> dict[str, list[dict[str, str]]]:
    """A GitHub Actions ``strategy.matrix`` value: ``{"include": [...]}``, one entry a job.

    Each entry names its shard (``svcforge matrix --shard K/N --verify`` runs it), the
    combinations it holds, and the Python versions they need (for ``setup-python``).
    """
    planned = shards(combinations, max_jobs)
    include = []
    for number, shard in enumerate(planned, start=1):
        versions = sorted(
            {str(c.answers["python_version"]) for c in shard if "python_version" in c.answers}
        )
        include.append(
            {
                "shard": f"{number}/{len(planned)}",
                "name": shard[0].name
                if len(shard) == 1
                else f"{shard[0].name} (+{len(shard) - 1})",
                "python": "\n".join(versions) or "3.11",
            }
        )
    return {"include": include}


def table(combinations: Sequence[Combination], columns: Sequence[str]) -> str:
    """A plain-text table: one row per combination, one column per enumerated question."""
    header = ["#", *columns]
    rows = [
        [str(number), *(_cell(c, column) for column in columns)]
        for number, c in enumerate(combinations, start=1)
    ]
    return _format_table(header, rows)


def _cell(combination: Combination, column: str) -> str:
    if column in combination.answers:
        return _yaml_scalar(combination.answers[column])
    if column in combination.skipped:
        return f"({_yaml_scalar(combination.skipped[column])}, not asked)"
    return ""


def _format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    return "\n".join(lines)


def to_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
