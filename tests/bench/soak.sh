#!/usr/bin/env bash
# `make soak`: half of the sustainable max load for SOAK_DURATION seconds (default 600) while
# another session pins the MVCC horizon for a fifth of it (2 of 10 minutes); prints throughput,
# backlog, n_dead_tup and table size every SOAK_INTERVAL seconds (default 30) and PASS/FAIL for
# "the backlog drains after the transaction ends" and "the table size stays bounded".
# Not part of `make test`. Knobs (env): SOAK_DURATION SOAK_INTERVAL SOAK_PIN SOAK_PIN_START
# SOAK_SETTLE SOAK_RATE (skip the probe) SOAK_PROBE, SOAK_PG_OPTIONS (server settings for the
# throw-away cluster, e.g. "autovacuum_naptime=10s log_autovacuum_min_duration=0"), plus the
# BENCH_* settings of run.sh.
#   SOAK_DURATION=60 SOAK_INTERVAL=5 SOAK_SETTLE=10 SOAK_PROBE=4 make soak     one-minute smoke version
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
[ -x build/outboxd ] || { echo "soak: build/outboxd missing: run make first" >&2; exit 1; }
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 1.5) }'; then
  echo "soak: WARNING: 1-minute load average is $load on $(nproc) CPUs; figures will be low." >&2
fi
tests/bench/build.sh
export BENCH_RESULTS_DIR=${BENCH_RESULTS_DIR:-$root/build-bench/results}
export WORK
WORK=$(mktemp -d /tmp/outboxd-soak.XXXXXX)
chmod 755 "$WORK"
trap '[ "${BENCH_KEEP:-0}" = 1 ] && echo "soak: kept $WORK" >&2 || rm -rf "$WORK"' EXIT
pg_options=(-o fsync=on -o synchronous_commit=on -o max_connections=300)
for o in ${SOAK_PG_OPTIONS:-}; do pg_options+=(-o "$o"); done
pg_virtualenv -t "${pg_options[@]}" bash tests/bench/soak_inner.sh
