#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine (Python 3.11, Node 20, root) and
# runs the whole suite: ruff, mypy, the labextension's own tests, then pytest.
# Usage: bash .ci/test.sh   (this is the README's test command; .ci/run calls exactly this)
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1

step() { printf '\n==> %s\n' "$*"; }

# System packages: a browser for UI tests, bubblewrap for the command sandbox, ripgrep for search.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v rg >/dev/null 2>&1 || need+=(ripgrep)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || need+=(postgresql)
if [ ${#need[@]} -gt 0 ]; then
  step "apt-get install ${need[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "not root: skipping apt-get; tests needing ${need[*]} will be skipped" >&2
  fi
fi

step "python venv (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
PY=.venv/bin/python
$PY -m pip install -q --upgrade pip

step "labextension and widget bundles (npm ci + build, offline-capable from the npm registry)"
(cd labextension && npm ci --no-audit --no-fund --loglevel=error && npm run build:prod --silent)

step "pip install -e '.[test,local]' (llama-cpp-python builds from source: ~5 min the first time)"
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} $PY -m pip install -q -e '.[test,local]'

step "ruff + mypy"
.venv/bin/ruff check polaris_jupyter tests bench
.venv/bin/mypy

step "labextension unit tests (node --test)"
if [ -d labextension/test ]; then (cd labextension && npm test --silent); fi

step "pytest"
mkdir -p test-artifacts
set +e
.venv/bin/python -m pytest -p no:cacheprovider -q -rs "$@"
status=$?
set -e
if [ $status -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit $status
