"""The ``svcforge`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .render import render

app = typer.Typer(help="Start and maintain production-ready Python web services.")


@app.callback()
def main() -> None:
    """svcforge: a Copier template for Python web services, and its tools."""


@app.command()
def new(
    dest: Annotated[Path, typer.Argument(help="Directory to create the service in")],
    defaults: Annotated[bool, typer.Option(help="Use default answers, ask nothing")] = False,
) -> None:
    """Generate a new service into DEST."""
    render(dest, defaults=defaults, quiet=False, vcs_ref=None)
