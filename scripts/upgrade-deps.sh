#!/usr/bin/env bash
# Move the dependencies forward on purpose: lock the newest releases, install them into a
# separate virtualenv, run the whole test command there, and only when it passes put the new
# lock files in locks/ (then commit them on their own: "Upgrade dependencies").
#
# Usage: bash scripts/upgrade-deps.sh [--check] [--keep-venv]
#   --check      report only: locks/ is never changed (CI runs this; exit 1 when the newest
#                releases fail the tests, 2 when they could not be resolved or installed)
#   --keep-venv  leave .venv-upgrade in place afterwards (default: removed, it is ~7 GB)
# torch and torchvision stay at locks/pins.txt: raising them is an edit of that file first.
# A passing upgrade (without --check) appends what changed to docs/dependencies.md.
set -uo pipefail
cd "$(dirname "$0")/.."
CHECK=0
KEEP=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK=1 ;;
    --keep-venv) KEEP=1 ;;
    *) echo "usage: $0 [--check] [--keep-venv]" >&2; exit 64 ;;
  esac
done
WORK=.upgrade
VENV=.venv-upgrade
rm -rf "$WORK" "$VENV"
mkdir -p "$WORK"
cleanup() { [ "$KEEP" = 1 ] || rm -rf "$VENV"; }
trap cleanup EXIT

say() { echo "upgrade-deps: $*"; }
if ! bash scripts/lock.sh --upgrade --out "$WORK" >"$WORK/lock.log" 2>&1; then
  cat "$WORK/lock.log"
  say "RESULT could not resolve the newest releases"
  exit 2
fi
python3 scripts/lockfile.py diff locks/requirements.txt "$WORK/requirements.txt" >"$WORK/changes.txt"
say "changes for $(python3 -V) against locks/requirements.txt:"
sed 's/^/  /' "$WORK/changes.txt"
if cmp -s locks/requirements.txt "$WORK/requirements.txt" && cmp -s locks/lowest.txt "$WORK/lowest.txt"
then
  say "RESULT PASS: the lock already holds the newest releases (tested by scripts/test.sh)"
  exit 0
fi
if ! bash scripts/install.sh --lock "$WORK/requirements.txt" --venv "$VENV" >"$WORK/install.log" 2>&1
then
  tail -n 30 "$WORK/install.log"
  say "RESULT the newest releases did not install"
  exit 2
fi
tail -n 1 "$WORK/install.log"
start=$(date +%s)
CLIPATLAS_VENV=$VENV bash scripts/test.sh 2>&1 | tee "$WORK/test.log"
status=${PIPESTATUS[0]}
summary=$(grep -E '^[0-9]+ (passed|failed)|[0-9]+ passed|error' "$WORK/test.log" | tail -n 1)
if [ "$status" != 0 ]; then
  say "RESULT FAIL: the test command failed on the newest releases ($summary); locks/ unchanged"
  exit 1
fi
say "RESULT PASS on the newest releases in $(($(date +%s) - start)) s ($summary)"
if [ "$CHECK" = 1 ]; then
  say "--check: locks/ unchanged"
  exit 0
fi
cp "$WORK/requirements.txt" "$WORK/lowest.txt" locks/
{
  echo
  echo "### $(date -u +%Y-%m-%d): scripts/upgrade-deps.sh passed ($summary)"
  echo
  if [ -s "$WORK/changes.txt" ]; then sed 's/^/- /' "$WORK/changes.txt"; fi
} >>docs/dependencies.md
say "locks/ updated and docs/dependencies.md appended: run bash scripts/install.sh, then commit"
