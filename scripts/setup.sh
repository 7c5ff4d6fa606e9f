#!/usr/bin/env bash
# Installs everything the demo and the tests need: the Debian stamps and the pinned Python
# packages. Idempotent: a second run installs nothing new and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

need_apt=()
[ -d /usr/share/tuxpaint/stamps ] || need_apt+=(tuxpaint-stamps-default)
[ -d /usr/share/datasets/fashion-mnist ] || need_apt+=(dataset-fashion-mnist)  # evaluation smoke test
command -v docker-compose >/dev/null || need_apt+=(docker-compose)  # validates docker/compose.yaml
command -v chromium >/dev/null || need_apt+=(chromium)  # the service's browser test (Playwright)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "setup: apt-get install ${need_apt[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# torch first and pinned, so that nothing later pulls another build.
"$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1
"$PY" -m pip install -q -c requirements/pinned.txt \
  -r requirements/pinned.txt
"$PY" -m pip install -q --no-deps --no-build-isolation -e .
# the evaluation lab (its own package, not in the wheel): `asif-qdrant-evaluate`, and
# `asif-qdrant evaluate` through the asif_qdrant.cli_commands entry point
"$PY" -m pip install -q --no-deps --no-build-isolation -e evaluation
# the LangChain adapter: its pinned dependencies, then the package itself
"$PY" -m pip install -q -c requirements/pinned.txt \
  -r integrations/langchain/requirements.txt
"$PY" -m pip install -q --no-deps --no-build-isolation -e integrations/langchain
