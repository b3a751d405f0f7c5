#!/usr/bin/env bash
# Write the lock files from pyproject.toml with uv (installed in .venv by the dev extra):
#   locks/requirements.txt  every extra and dev tool, one universal resolution for Python >= 3.10
#                           on every platform, with hashes; what scripts/install.sh installs
#   locks/lowest.txt        the lowest version of each direct dependency that pyproject.toml
#                           admits (Python 3.11), for scripts/check-lowest.sh
# Both take locks/pins.txt as constraints and lock locks/tools.in (pip, setuptools) too.
#
# Usage: bash scripts/lock.sh [--upgrade] [--out DIR]
#   default    keep every locked version that pyproject.toml still admits and add what is new
#              (uv reads the existing lock as its preferences): an edit of pyproject.toml
#   --upgrade  the newest releases of everything (pins.txt still applies; in lowest.txt the
#              direct dependencies stay at their lower bounds, what they need moves); run through
#              scripts/upgrade-deps.sh, which also installs and tests the result
#   --out DIR  write the two files into DIR instead of locks/ (DIR/requirements.txt starts
#              from locks/requirements.txt's versions unless --upgrade)
# Environment: UV (default .venv/bin/uv, else uv on PATH); UV_INDEX_URL etc. for a mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=locks
UPGRADE=()
usage() { echo "usage: $0 [--upgrade] [--out DIR]" >&2; exit 64; }
while [ $# -gt 0 ]; do
  case "$1" in
    --upgrade) UPGRADE=(--upgrade) ;;
    --out) OUT=${2:-}; [ -n "$OUT" ] || usage; shift ;;
    *) usage ;;
  esac
  shift
done
UV=${UV:-}
if [ -z "$UV" ]; then
  if [ -x .venv/bin/uv ]; then UV=.venv/bin/uv; else UV=$(command -v uv || true); fi
fi
[ -n "$UV" ] || { echo "error: uv not found (bash scripts/install.sh installs it)" >&2; exit 1; }
mkdir -p "$OUT"
for name in requirements.txt lowest.txt; do
  if [ "$OUT" != locks ] && [ -f "locks/$name" ] && [ ! -f "$OUT/$name" ]; then
    cp "locks/$name" "$OUT/$name"
  fi
done
export UV_PYTHON_DOWNLOADS=never  # the target version need not be installed to resolve for it
COMMON=(pyproject.toml locks/tools.in --all-extras -c locks/pins.txt --quiet
  --custom-compile-command "bash scripts/lock.sh" --generate-hashes)
"$UV" pip compile "${COMMON[@]}" "${UPGRADE[@]}" --universal --python-version 3.10 \
  -o "$OUT/requirements.txt"
"$UV" pip compile "${COMMON[@]}" "${UPGRADE[@]}" --resolution lowest-direct --python-version 3.11 \
  -o "$OUT/lowest.txt"
echo "wrote $OUT/requirements.txt and $OUT/lowest.txt with $("$UV" --version)"
