#!/usr/bin/env bash
# Creates .venv beside the repo root and installs the pinned requirements (idempotent).
# Also makes WordNet available offline for METEOR (see biocoach_jax/metrics).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -r requirements.txt
if [ -f biocoach_jax/metrics/wordnet_setup.py ]; then
  .venv/bin/python -m biocoach_jax.metrics.wordnet_setup
fi
