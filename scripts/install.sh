#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtualenv in .venv with clipatlas, every optional
# extra and the test tools, at exactly the versions in the lock file (locks/requirements.txt,
# hashes checked), then a check that nothing drifted from it.
#
# Usage: bash scripts/install.sh [--cpu] [--lock FILE] [--venv DIR]
#   --cpu       torch and torchvision as CPU builds (VERSION+cpu, the locked versions) from the
#               index in CLIPATLAS_TORCH_INDEX (default https://download.pytorch.org/whl/cpu; a
#               local folder of wheels works too) and none of the CUDA packages: a far smaller
#               venv on Linux, where PyPI's torch is a CUDA build. Everything else is the lock's.
#   --lock FILE another lock (default locks/requirements.txt; locks/lowest.txt holds the
#               lowest versions pyproject.toml admits, checked by scripts/check-lowest.sh)
#   --venv DIR  another virtualenv (default .venv)
# Environment: PYTHON (default python3) creates the venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
LOCK=locks/requirements.txt
VENV=.venv
CPU=0
usage() { echo "usage: $0 [--cpu] [--lock FILE] [--venv DIR]" >&2; exit 64; }
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) CPU=1 ;;
    --lock) LOCK=${2:-}; [ -n "$LOCK" ] || usage; shift ;;
    --venv) VENV=${2:-}; [ -n "$VENV" ] || usage; shift ;;
    *) usage ;;
  esac
  shift
done
[ -f "$LOCK" ] || { echo "error: no lock file $LOCK" >&2; exit 1; }

start=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY=$VENV/bin/python
# pip --quiet still warns once per package about index folders a machine's pip.conf names
# but lacks; those lines say nothing about this install.
pip_quiet() {
  "$PY" -m pip --quiet --disable-pip-version-check "$@" 2> >(grep -v 'is ignored: it is neither' >&2)
}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# pip itself first, at its locked version, so the rest is installed by the pip CI used.
"$PY" scripts/lockfile.py pin "$LOCK" pip >"$WORK/pip.txt"
pip_quiet install "pip==$(cat "$WORK/pip.txt")"

if [ "$CPU" = 1 ]; then
  TORCH_INDEX=${CLIPATLAS_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}
  if [ -d "$TORCH_INDEX" ]; then
    FROM=(--no-index --find-links "$TORCH_INDEX")
  else
    FROM=(--index-url "$TORCH_INDEX")
  fi
  builds=("torch==$("$PY" scripts/lockfile.py pin "$LOCK" torch)+cpu")
  # torchvision only where the lock has it (the open_clip extra)
  if "$PY" scripts/lockfile.py pin "$LOCK" torchvision >"$WORK/tv.txt" 2>/dev/null; then
    builds+=("torchvision==$(cat "$WORK/tv.txt")+cpu")
  fi
  # No hashes here: the lock holds PyPI's (CUDA) wheels, the CPU index has other files.
  pip_quiet install --no-deps "${FROM[@]}" "${builds[@]}"
  "$PY" scripts/lockfile.py without-cuda "$LOCK" >"$WORK/lock.txt"
  REQUIREMENTS=$WORK/lock.txt
  CHECK=(--cpu)
else
  REQUIREMENTS=$LOCK
  CHECK=()
fi
# Every package at its locked version and hash; nothing resolved on install day.
pip_quiet install --require-hashes --no-deps -r "$REQUIREMENTS"
# The project itself, built with the locked setuptools.
pip_quiet install --no-deps --no-build-isolation -e .
"$PY" -m pip check
"$PY" scripts/lockfile.py check "$LOCK" "${CHECK[@]}"
size=$(du -sm "$VENV" | cut -f1)
echo "clipatlas installed in $VENV from $LOCK in $(($(date +%s) - start)) s, ${size} MB" \
  "(activate with: source $VENV/bin/activate)"
