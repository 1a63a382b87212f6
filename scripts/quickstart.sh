#!/usr/bin/env bash
# Generate a service with the default answers into ./my-service (or $1) and serve it
# with its production server (Gunicorn) on http://127.0.0.1:${PORT:-8000}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
dest="${1:-my-service}"

if [ ! -f "$dest/.copier-answers.yml" ]; then
  .venv/bin/svcforge new "$dest" --defaults --vcs-ref HEAD  # this checkout, not the last tag
fi
cd "$dest"
if [ ! -x .venv/bin/gunicorn ]; then
  echo "quickstart: installing $dest into $dest/.venv" >&2
  ../.venv/bin/uv venv -q -p "$(command -v python3)" .venv
  ../.venv/bin/uv pip install -q -p .venv/bin/python -e '.[dev]'
fi
export PORT="${PORT:-8000}"
echo "quickstart: serving on http://127.0.0.1:$PORT (try /healthz, /docs); Ctrl-C stops it" >&2
exec .venv/bin/gunicorn -c gunicorn.conf.py
