#!/usr/bin/env bash
# The long versions of the reliability tests (docs/reliability.md): far more fuzzed files and
# kills than CI runs. Each step prints one JSON line; the script exits non-zero if any fails.
#
#   bash scripts/soak.sh                       # 200,000 fuzzed files, 100 kills of 2,000 items
#   SOAK_FUZZ_FILES=1000000 SOAK_KILLS=500 SOAK_SEED=7 bash scripts/soak.sh
#   SOAK_OUT=soak.jsonl bash scripts/soak.sh   # also append the JSON lines to a file
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
FILES=${SOAK_FUZZ_FILES:-200000}
ITEMS=${SOAK_ITEMS:-2000}
KILLS=${SOAK_KILLS:-100}
SEED=${SOAK_SEED:-1}
OUT=${SOAK_OUT:-/dev/null}
status=0
run() {
  local line
  line=$("$@") || status=1
  echo "$line" | tee -a "$OUT"
}
run "$PY" scripts/soak/fuzz.py --files "$FILES" --seed "$SEED"
run "$PY" scripts/soak/crash.py --items "$ITEMS" --kills "$KILLS" --seed "$SEED"
# the CI-sized bombs, hostile servers and audit verdicts once more, for the record
"$PY" -m pytest -q -p no:cacheprovider tests/test_reliability_bombs.py \
  tests/test_reliability_hostile.py tests/test_reliability_audit.py || status=1
echo "soak: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
