#!/usr/bin/env bash
# Dependency audit: the installed (locked) dependencies of .venv against a vulnerability
# database, with pip-audit.
#
# Exit codes:
#   0  audited, no known vulnerability in the watched packages (image decoders, web stack)
#   1  a known vulnerability in a watched package (others are listed, and fail with --strict)
#   2  the audit could NOT be done: the vulnerability service was unreachable or did not know
#      a watched package. This is never a pass: pip-audit itself exits 0 when it skips
#      everything it could not look up, so this script reads its JSON and says so.
#
# Usage: bash scripts/audit.sh [--strict] [--service pypi|osv] [--report pip-audit.json]
#   (or CLIPATLAS_AUDIT_SERVICE=osv). The "pypi" service asks pypi.org's JSON API per
#   release (/pypi/<name>/<version>/json); "osv" asks api.osv.dev. --report judges a JSON
#   report pip-audit already wrote (-f json) instead of running it.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
SERVICE=${CLIPATLAS_AUDIT_SERVICE:-pypi}
STRICT=0
REPORT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --strict) STRICT=1 ;;
    --service) SERVICE=$2; shift ;;
    --report) REPORT=$2; shift ;;
    *) echo "usage: $0 [--strict] [--service pypi|osv] [--report FILE]" >&2; exit 64 ;;
  esac
  shift
done
# Image decoders and the web stack: a known vulnerability in any of these fails the audit.
WATCHED="pillow fastapi starlette uvicorn jinja2 python-multipart httpx httpcore h11 markupsafe"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -n "$REPORT" ]; then
  cp "$REPORT" "$WORK/report.json"
elif ! "$PY" -m pip_audit --version >/dev/null 2>&1; then
  echo "audit: UNAVAILABLE - pip-audit is not installed (pip install -e '.[dev]')" >&2
  exit 2
else
  # The lock: exactly what is installed (the editable clipatlas itself is not on PyPI).
  "$PY" -m pip freeze --exclude-editable --disable-pip-version-check >"$WORK/locked.txt"
  echo "audit: $(wc -l <"$WORK/locked.txt") locked packages, service $SERVICE"
  "$PY" -m pip_audit -r "$WORK/locked.txt" --no-deps --disable-pip --progress-spinner off \
    -s "$SERVICE" -f json -o "$WORK/report.json" 2>"$WORK/stderr.txt"
  CODE=$?
  if [ ! -s "$WORK/report.json" ]; then
    echo "audit: UNAVAILABLE - pip-audit exited $CODE without a report:" >&2
    tail -n 5 "$WORK/stderr.txt" >&2
    exit 2
  fi
fi
WATCHED="$WATCHED" STRICT="$STRICT" "$PY" - "$WORK/report.json" <<'EOF'
import json
import os
import sys

watched = set(os.environ["WATCHED"].split())
strict = os.environ["STRICT"] == "1"
report = json.load(open(sys.argv[1]))
deps = report.get("dependencies", [])
skipped = [d for d in deps if d.get("skip_reason")]
vulnerable = [d for d in deps if d.get("vulns")]
audited = len(deps) - len(skipped)
print(f"audit: {audited} of {len(deps)} packages audited, {len(vulnerable)} with known vulnerabilities")
for dep in vulnerable:
    mark = "WATCHED" if dep["name"].lower() in watched else "other"
    for vuln in dep["vulns"]:
        fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
        print(f"  [{mark}] {dep['name']} {dep.get('version', '')}: {vuln['id']} (fixed in {fixed})")
missing = sorted(d["name"] for d in skipped if d["name"].lower() in watched)
if missing or (deps and audited == 0):
    print(
        "audit: UNAVAILABLE - the vulnerability service could not look up "
        f"{len(skipped)} of {len(deps)} packages (watched: {', '.join(missing) or 'none'}); "
        f"first reason: {skipped[0]['skip_reason'] if skipped else 'none'}. "
        "This is not a pass: run it where the service is reachable.",
        file=sys.stderr,
    )
    sys.exit(2)
bad = [d for d in vulnerable if d["name"].lower() in watched or strict]
sys.exit(1 if bad else 0)
EOF
