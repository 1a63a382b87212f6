#!/usr/bin/env bash
# Run the whole test suite of the template (pass pytest options through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
start=$(date +%s)
status=0
.venv/bin/python -m pytest "$@" || status=$?
echo "test suite: $(( $(date +%s) - start )) s wall time, exit status $status"
exit "$status"
