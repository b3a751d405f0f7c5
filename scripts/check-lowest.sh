#!/usr/bin/env bash
# The lower bounds in pyproject.toml are tested, not hoped for: install locks/lowest.txt (the
# lowest version of every direct dependency that pyproject.toml admits, e.g. transformers 4.44,
# numpy 1.26, Pillow 10.3) into .venv-lowest and run the test suite there. Lint and types are
# judged by the locked ruff and mypy in scripts/test.sh, not by their oldest releases.
#
# Usage: bash scripts/check-lowest.sh [--keep-venv] [pytest arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-lowest
KEEP=0
if [ "${1:-}" = --keep-venv ]; then KEEP=1; shift; fi
cleanup() { [ "$KEEP" = 1 ] || rm -rf "$VENV"; }
trap cleanup EXIT
rm -rf "$VENV"
bash scripts/install.sh --lock locks/lowest.txt --venv "$VENV" 2>&1 | grep -v 'is ignored' | tail -n 3
CLIPATLAS_VENV=$VENV CLIPATLAS_TEST_ONLY=1 bash scripts/test.sh "$@"
echo "check-lowest: the test suite passed on locks/lowest.txt"
