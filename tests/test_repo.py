"""The template repository's own Python is held to the standard it sets for services."""

from __future__ import annotations

import sys
from pathlib import Path

from svcforge import TEMPLATE_ROOT

from .support import run

RUFF = str(Path(sys.executable).parent / "ruff")
OWN_CODE = ["svcforge", "tests", "benchmarks", "scripts", "hooks"]


def test_own_code_is_lint_clean_and_formatted() -> None:
    run([RUFF, "check", "--no-cache", *OWN_CODE], TEMPLATE_ROOT)
    run([RUFF, "format", "--check", "--no-cache", *OWN_CODE], TEMPLATE_ROOT)
