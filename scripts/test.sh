#!/usr/bin/env bash
# The tests: install what is needed, then lint, check the import contracts and run unit +
# integration tests (not 'slow').
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY="${PYTHON:-python3}"
"$PY" -m ruff check .
"$PY" -m ruff format --check .
# lint-imports: the layer contracts of pyproject.toml (docs/design.md)
"$PY" -c "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
"$PY" -m pytest "$@"
# The float-sensitive tests (marker 'blas') once more under OpenBLAS's Haswell kernel: CI
# machines pick Haswell or SkylakeX by CPU, and their float32 tolerances and near-ties must
# hold under both (issue #19, tests/floats.py). About one to two minutes more.
OPENBLAS_CORETYPE=Haswell exec "$PY" -m pytest -q -p no:cacheprovider -m blas \
    tests/unit evaluation/tests
