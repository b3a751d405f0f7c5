#!/usr/bin/env bash
# Dependency audit: the installed (locked) dependencies of .venv (or $CLIPATLAS_VENV) against a vulnerability
# database.
#
# Exit codes:
#   0  audited, no known vulnerability in the watched packages (image decoders, web stack)
#   1  a known vulnerability in a watched package (others are listed, and fail with --strict)
#   2  the audit could NOT be done: the vulnerability service was unreachable or could not
#      judge a watched package. This is never a pass: pip-audit itself exits 0 when it skips
#      everything it could not look up, so this script reads the JSON report and says so.
#
# Usage: bash scripts/audit.sh [--strict] [--service auto|pypi|osv|latest] [--report FILE]
#   (or CLIPATLAS_AUDIT_SERVICE=...). Services:
#   pypi    pip-audit asking pypi.org's per-release JSON (/pypi/<name>/<version>/json)
#   osv     pip-audit asking api.osv.dev
#   latest  scripts/audit_latest.py asking the per-project JSON (/pypi/<name>/json), whose
#           advisories are those of the project's LATEST release: a pin that is the latest
#           release is audited; an older pin is skipped ("latest release only"), and an older
#           WATCHED pin therefore makes the audit unavailable (2), never a pass
#   auto    (default) pypi first; when its report leaves watched packages unlooked-up (e.g.
#           a registry mirror that 404s per-release JSON), says so and uses latest instead
# --report FILE judges a JSON report pip-audit (-f json) or audit_latest.py already wrote.
# Environment (mainly for tests): CLIPATLAS_AUDIT_REQUIREMENTS=FILE audits the name==version
# lines of FILE instead of `pip freeze` of .venv; CLIPATLAS_AUDIT_PYPI_URL=URL is the registry
# root the latest service asks (default https://pypi.org).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${CLIPATLAS_VENV:-.venv}/bin/python
SERVICE=${CLIPATLAS_AUDIT_SERVICE:-auto}
STRICT=0
REPORT=""
USAGE="usage: $0 [--strict] [--service auto|pypi|osv|latest] [--report FILE]"
while [ $# -gt 0 ]; do
  case "$1" in
    --strict) STRICT=1 ;;
    --service) SERVICE=${2:-}; shift ;;
    --report) REPORT=${2:-}; shift ;;
    *) echo "$USAGE" >&2; exit 64 ;;
  esac
  shift
done
case "$SERVICE" in auto | pypi | osv | latest) ;; *) echo "$USAGE" >&2; exit 64 ;; esac
# Image decoders and the web stack: a known vulnerability in any of these fails the audit.
WATCHED="pillow fastapi starlette uvicorn jinja2 python-multipart httpx httpcore h11 markupsafe"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# judge REPORT SERVICE [fallback]: print the verdict and exit-code it (0/1/2). With
# "fallback", an unavailable report prints one line and returns 3 so the caller tries latest.
judge() {
  WATCHED="$WATCHED" STRICT="$STRICT" SERVICE_NAME="$2" FALLBACK="${3:-}" "$PY" - "$1" <<'EOF'
import json
import os
import re
import sys

watched = set(os.environ["WATCHED"].split())
strict = os.environ["STRICT"] == "1"
service = os.environ["SERVICE_NAME"]
report = json.load(open(sys.argv[1]))
deps = report.get("dependencies", [])
skipped = [d for d in deps if d.get("skip_reason")]
vulnerable = [d for d in deps if d.get("vulns")]
audited = len(deps) - len(skipped)
missing = sorted(d["name"] for d in skipped if d["name"].lower() in watched)
unavailable = bool(missing or (deps and audited == 0))
if unavailable and os.environ["FALLBACK"]:
    print(
        f"audit: service {service} could not look up {len(skipped)} of {len(deps)} packages "
        f"(watched: {', '.join(missing) or 'none'}) - trying the latest service instead"
    )
    sys.exit(3)
older = [d for d in skipped if "latest release only" in d["skip_reason"]]
print(f"audit: {audited} of {len(deps)} packages audited, {len(vulnerable)} with known vulnerabilities")
print(
    f"audit: verdict from service {service}: {audited} audited, {len(older)} skipped as not "
    f"the latest release, {len(skipped) - len(older)} skipped for other reasons"
)
for dep in skipped:
    if dep["name"].lower() in watched:
        print(f"  [skipped WATCHED] {dep['name']} {dep.get('version', '')}: {dep['skip_reason']}")
others = []
for dep in skipped:
    if dep["name"].lower() not in watched:
        latest = re.search(r", latest (\S+):", dep["skip_reason"])
        newer = f" (latest {latest.group(1)})" if latest else ""
        others.append(f"{dep['name']} {dep.get('version', '')}{newer}".strip())
if others:
    print(f"  [skipped] {', '.join(others)}")
for dep in vulnerable:
    mark = "WATCHED" if dep["name"].lower() in watched else "other"
    for vuln in dep["vulns"]:
        fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
        print(f"  [{mark}] {dep['name']} {dep.get('version', '')}: {vuln['id']} (fixed in {fixed})")
if unavailable:
    print(
        f"audit: UNAVAILABLE - the vulnerability service ({service}) could not look up "
        f"{len(skipped)} of {len(deps)} packages (watched: {', '.join(missing) or 'none'}); "
        f"first reason: {skipped[0]['skip_reason'] if skipped else 'none'}. "
        "This is not a pass: run it where the service is reachable.",
        file=sys.stderr,
    )
    sys.exit(2)
bad = [d for d in vulnerable if d["name"].lower() in watched or strict]
sys.exit(1 if bad else 0)
EOF
}

# run_pip_audit SERVICE: pip-audit's report in $WORK/report.json; 0 when it wrote one.
run_pip_audit() {
  if ! "$PY" -m pip_audit --version >/dev/null 2>&1; then
    echo "audit: pip-audit is not installed (pip install -e '.[dev]')" >&2
    return 1
  fi
  rm -f "$WORK/report.json"
  "$PY" -m pip_audit -r "$WORK/locked.txt" --no-deps --disable-pip --progress-spinner off \
    -s "$1" -f json -o "$WORK/report.json" 2>"$WORK/stderr.txt"
  local code=$?
  if [ ! -s "$WORK/report.json" ]; then
    echo "audit: pip-audit ($1) exited $code without a report: $(tail -n 1 "$WORK/stderr.txt")" >&2
    return 1
  fi
}

# run_latest: audit_latest.py's report in $WORK/report.json; 0 when it wrote one.
run_latest() {
  rm -f "$WORK/report.json"
  "$PY" scripts/audit_latest.py "$WORK/locked.txt" -o "$WORK/report.json" && [ -s "$WORK/report.json" ]
}

if [ -n "$REPORT" ]; then
  cp "$REPORT" "$WORK/report.json" || exit 2
  judge "$WORK/report.json" report
  exit $?
fi
# The lock: exactly what is installed (the editable clipatlas itself is not on PyPI).
if [ -n "${CLIPATLAS_AUDIT_REQUIREMENTS:-}" ]; then
  cp "$CLIPATLAS_AUDIT_REQUIREMENTS" "$WORK/locked.txt" || exit 2
else
  "$PY" -m pip freeze --exclude-editable --disable-pip-version-check >"$WORK/locked.txt"
fi
echo "audit: $(grep -c . "$WORK/locked.txt") locked packages, service $SERVICE"
case "$SERVICE" in
  pypi | osv)
    run_pip_audit "$SERVICE" || { echo "audit: UNAVAILABLE - no report from pip-audit" >&2; exit 2; }
    judge "$WORK/report.json" "$SERVICE"
    exit $? ;;
  latest)
    run_latest || { echo "audit: UNAVAILABLE - no report from audit_latest.py" >&2; exit 2; }
    judge "$WORK/report.json" latest
    exit $? ;;
  auto)
    if run_pip_audit pypi; then
      judge "$WORK/report.json" pypi fallback
      CODE=$?
      [ "$CODE" -ne 3 ] && exit "$CODE"
    else
      echo "audit: service pypi gave no report - trying the latest service instead"
    fi
    run_latest || { echo "audit: UNAVAILABLE - no report from audit_latest.py" >&2; exit 2; }
    judge "$WORK/report.json" latest
    exit $? ;;
esac
