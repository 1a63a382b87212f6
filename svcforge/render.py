"""Render the template with Copier's API: one place for the options every caller needs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import copier

from . import TEMPLATE_ROOT


def isolated_copier_settings(tmp_dir: Path) -> Path:
    """Point Copier at an empty settings file so a user's settings.yml can't leak in."""
    path = tmp_dir / "copier-settings.yml"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n")  # an empty file crashes copier; an empty mapping doesn't
    os.environ["COPIER_SETTINGS_PATH"] = str(path)
    return path


def render(
    dst: Path,
    data: Mapping[str, Any] | None = None,
    *,
    src: Path | str = TEMPLATE_ROOT,
    vcs_ref: str | None = "HEAD",
    defaults: bool = True,
    quiet: bool = True,
) -> Path:
    """Render the template into ``dst`` with ``data`` answers; defaults for the rest.

    ``vcs_ref="HEAD"`` renders the working tree of a git checkout (uncommitted changes
    included) instead of its latest release tag.
    """
    copier.run_copy(
        str(src),
        str(dst),
        data=dict(data or {}),
        defaults=defaults,
        unsafe=True,
        quiet=quiet,
        vcs_ref=vcs_ref,
        overwrite=True,
    )
    return dst
