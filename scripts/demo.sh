#!/usr/bin/env bash
# The main job: install what is needed, then run the demo on the embedded engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" -m asif_qdrant demo "$@"
