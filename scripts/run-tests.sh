#!/usr/bin/env bash
# Runs every test suite against real parts: unit tests, then integration and fault tests inside a
# throw-away PostgreSQL 15 cluster (pg_virtualenv -t, fsync on), then the ops checks. Prints one
# "N passed, N failed" line per suite and a total; exits non-zero on any failure.
set -uo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
passed=0; failed=0
count() {  # suite log: add gtest's totals
  local p f
  p=$(grep -Eo '^\[  PASSED  \] [0-9]+' "$1" | grep -Eo '[0-9]+$' | tail -1)
  f=$(grep -E '^\[  FAILED  \] [A-Za-z_]' "$1" | awk '{print $4}' | sort -u | wc -l)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
}
log=$(mktemp -d)

echo "== unit tests"
"$build/unit_tests" --gtest_brief=1 >"$log/unit" 2>&1; rc_unit=$?
tail -3 "$log/unit"; count "$log/unit"
[ $rc_unit -eq 0 ] || { grep -E "FAILED|Failure" -A5 "$log/unit" | head -60; }

echo "== integration and fault tests (throw-away PostgreSQL)"
# pg_virtualenv refuses to create clusters as root without -t in some set-ups; -t keeps them apart.
pg_virtualenv -t -o fsync=on "$build/integration_tests" --gtest_brief=1 >"$log/integration" 2>&1; rc_int=$?
grep -vE "^(Creating new PostgreSQL cluster|Dropping cluster)" "$log/integration" | tail -3; count "$log/integration"
[ $rc_int -eq 0 ] || { grep -E "FAILED|Failure|Expected|Which is|Value of" -A3 "$log/integration" | head -80; }

rc_ops=0
if [ -x tests/ops/test_ops.sh ]; then
  echo "== ops checks (promtool, systemd-analyze, config docs)"
  tests/ops/test_ops.sh "$build" >"$log/ops" 2>&1; rc_ops=$?
  tail -1 "$log/ops"
  p=$(grep -Eo '^[0-9]+ passed' "$log/ops" | grep -Eo '^[0-9]+' | tail -1)
  f=$(grep -Eo '[0-9]+ failed' "$log/ops" | grep -Eo '^[0-9]+' | tail -1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  [ $rc_ops -eq 0 ] || cat "$log/ops" | tail -30
fi

rm -rf "$log"
echo "$passed passed, $failed failed"
[ $rc_unit -eq 0 ] && [ $rc_int -eq 0 ] && [ $rc_ops -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
