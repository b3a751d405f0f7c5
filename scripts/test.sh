#!/usr/bin/env bash
# The test command: lint, type-check, then the whole test suite (arguments go to pytest).
# CLIPATLAS_VENV=DIR runs it in another virtualenv (scripts/upgrade-deps.sh, check-lowest.sh);
# CLIPATLAS_TEST_ONLY=1 runs pytest alone (the lowest-versions check: lint and types are judged
# by the locked ruff and mypy, not by their oldest releases).
set -euo pipefail
cd "$(dirname "$0")/.."
export CLIPATLAS_VENV=${CLIPATLAS_VENV:-.venv}
PY=$CLIPATLAS_VENV/bin/python
if [ "${CLIPATLAS_TEST_ONLY:-0}" != 1 ]; then
  "$PY" -m ruff check clipatlas tests bench scripts
  "$PY" -m ruff format --check clipatlas tests bench scripts
  "$PY" -m mypy clipatlas
fi
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$PY" -m pytest -q "$@"
