#!/usr/bin/env bash
# Create .venv with svcforge and its test tools. Idempotent; needs only Python 3.11+ and git.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      PYTHON="$candidate"
      break
    fi
  done
fi
[ -n "$PYTHON" ] || { echo "bootstrap: Python 3.11 or newer is required" >&2; exit 1; }

stamp=".venv/.svcforge-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing svcforge and its test tools into .venv" >&2
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip uv
  # Precompiled bytecode: with PYTHONDONTWRITEBYTECODE set (common in CI and containers)
  # every copier run would otherwise recompile copier and its dependencies (~1 s).
  .venv/bin/uv pip install -q --compile-bytecode -p .venv/bin/python -e '.[test]'
  rm -f .venv/.svcforge-*
  touch "$stamp"
fi
