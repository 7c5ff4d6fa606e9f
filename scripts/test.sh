#!/usr/bin/env bash
# The tests: install what is needed, then lint and run unit + integration tests (not 'slow').
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY="${PYTHON:-python3}"
"$PY" -m ruff check .
"$PY" -m ruff format --check .
exec "$PY" -m pytest "$@"
