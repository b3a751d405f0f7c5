#!/usr/bin/env bash
# The test command: lint, type-check, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
"$PY" -m ruff check clipatlas tests bench
"$PY" -m mypy clipatlas
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$PY" -m pytest -q "$@"
