"""Migrations for ``copier update`` (see ``_migrations`` in copier.yml, docs/upgrading.md).

    python hooks/migrate.py rename-answer OLD NEW [--answers-file .copier-answers.yml]

Renames a top-level key of the answers file in place, so a renamed question keeps the
answer the team gave (Copier would otherwise ask again, or silently use the default).
Only the key changes: every other byte of the file stays as it was. Idempotent: when
OLD is absent (already migrated, or never answered) nothing happens. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def rename_answer(answers_file: Path, old: str, new: str) -> bool:
    """Rename ``old`` to ``new`` in ``answers_file``; True when something changed."""
    text = answers_file.read_text()
    old_key = re.compile(rf"^{re.escape(old)}:(?=\s)", re.MULTILINE)
    if not old_key.search(text):
        return False
    if re.search(rf"^{re.escape(new)}:(?=\s)", text, re.MULTILINE):
        raise SystemExit(f"migrate: {answers_file} has both {old!r} and {new!r}; fix it by hand")
    answers_file.write_text(old_key.sub(f"{new}:", text, count=1))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rename = commands.add_parser("rename-answer", help="rename a question's recorded answer")
    rename.add_argument("old")
    rename.add_argument("new")
    rename.add_argument("--answers-file", type=Path, default=Path(".copier-answers.yml"))
    args = parser.parse_args(argv)
    if not args.answers_file.exists():
        print(f"migrate: {args.answers_file} not found", file=sys.stderr)
        return 1
    changed = rename_answer(args.answers_file, args.old, args.new)
    outcome = f"renamed to {args.new!r}" if changed else "absent, nothing to do"
    print(f"migrate: answer {args.old!r} {outcome}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
