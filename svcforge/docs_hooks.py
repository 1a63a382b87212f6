"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

Benchmark pages are written by the scripts in ``benchmarks/``; a page exists once its
script has run. These hooks list whichever pages exist, in the navigation and in the
table of ``docs/benchmarks/index.md``, so adding a benchmark needs no edit here and a
strict build never points at a page that was not generated.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

SECTION = "Benchmarks"
MARKER = "<!-- benchmark-pages -->"


def _title(page: Path) -> str:
    for line in page.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem.replace("-", " ").capitalize()


def _script(page: Path) -> str:
    """The script a page names as its source (``Written by benchmarks/x.py`` or a command)."""
    found = re.search(r"benchmarks/[\w-]+\.py", page.read_text())
    return f"`{found.group(0)}`" if found else ""


def benchmark_pages(docs_dir: Path) -> list[Path]:
    """Generated benchmark pages, generation speed first, then by name."""
    pages = [p for p in (docs_dir / "benchmarks").glob("*.md") if p.name != "index.md"]
    return sorted(pages, key=lambda p: (p.name != "generation.md", p.name))


def on_config(config: Any) -> Any:
    docs_dir = Path(config["docs_dir"])
    entries: list[Any] = ["benchmarks/index.md"]
    entries += [{_title(p): f"benchmarks/{p.name}"} for p in benchmark_pages(docs_dir)]
    for item in config["nav"] or []:
        if isinstance(item, dict) and SECTION in item:
            item[SECTION] = entries
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != "benchmarks/index.md" or MARKER not in markdown:
        return markdown
    rows = ["| Page | Script |", "| --- | --- |"]
    for path in benchmark_pages(Path(config["docs_dir"])):
        rows.append(f"| [{_title(path)}]({path.name}) | {_script(path)} |")
    return markdown.replace(MARKER, "\n".join(rows))
