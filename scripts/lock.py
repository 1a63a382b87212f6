"""Regenerate the dependency locks the template ships: ``includes/locks/*.txt``.

A generated project gets ``requirements.txt``: every runtime dependency pinned with
hashes, resolved for every platform and every Python the project supports
(``uv pip compile --universal --generate-hashes``). The lock depends only on the
dependency set, so the template keeps one per framework x metrics x tracing, rendered
into the project by ``template/requirements.txt.jinja``. After the first copy the
project owns its lock (``_skip_if_exists`` in copier.yml) and refreshes it with
``make lock``, which runs the same command as this script.

Usage (from the repository root, after ``bash scripts/bootstrap.sh``)::

    .venv/bin/python scripts/lock.py            # keep current pins where still valid
    .venv/bin/python scripts/lock.py --upgrade  # newest versions allowed by pyproject

Re-run it whenever a dependency changes in ``template/pyproject.toml.jinja`` or in
``includes/variants/<framework>/*dependencies.toml.jinja``; ``tests/test_lock.py`` fails
while a lock is stale.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from svcforge.envs import uv  # noqa: E402
from svcforge.render import isolated_copier_settings, render  # noqa: E402

LOCKS = ROOT / "includes" / "locks"
FRAMEWORKS = ("fastapi", "flask")
# The oldest Python the template offers: a universal lock resolved for
# requires-python >= 3.11 is valid for every newer version too (markers included).
LOCK_PYTHON = "3.11"

# The exact command a generated project's `make lock` runs (see template/Makefile.jinja).
COMPILE_ARGS = [
    "pip",
    "compile",
    "pyproject.toml",
    "--universal",
    "--generate-hashes",
    "--no-annotate",
    "--quiet",
    "--custom-compile-command",
    "make lock",
    "--output-file",
    "requirements.txt",
]


def lock_name(framework: str, metrics: bool, tracing: bool) -> str:
    """File name of a lock; ``template/requirements.txt.jinja`` builds the same name."""
    return framework + ("-metrics" if metrics else "") + ("-tracing" if tracing else "") + ".txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upgrade", action="store_true", help="ignore current pins")
    options = parser.parse_args()

    LOCKS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="svcforge-lock-") as tmp:
        isolated_copier_settings(Path(tmp) / "copier-settings")
        for framework, metrics, tracing in itertools.product(
            FRAMEWORKS, (False, True), (False, True)
        ):
            name = lock_name(framework, metrics, tracing)
            if not (LOCKS / name).exists():
                (LOCKS / name).write_text("")  # a first run: the template includes it
            answers = {
                "framework": framework,
                "python_version": LOCK_PYTHON,
                "metrics": metrics,
                "tracing": tracing,
                "kubernetes": False,
                "ci": "none",
            }
            project = render(Path(tmp) / name.removesuffix(".txt"), answers)
            lock = project / "requirements.txt"  # rendered from the current lock
            upgrade = ["--upgrade"] if options.upgrade else []
            # uv keeps the pins of the existing output file where they still fit.
            subprocess.run([uv(), *COMPILE_ARGS, *upgrade], cwd=project, check=True)
            changed = (LOCKS / name).read_bytes() != lock.read_bytes()
            shutil.copyfile(lock, LOCKS / name)
            pins = sum(1 for line in lock.read_text().splitlines() if "==" in line)
            print(f"{'updated' if changed else 'unchanged':9} includes/locks/{name} ({pins} pins)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
