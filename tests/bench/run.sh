#!/usr/bin/env bash
# `make bench`: outboxd against the limits of this machine and against a peer, in one run.
# Builds the bench tools (build-bench/), installs the Graphile Worker peer (tests/bench/node_modules,
# npm), then runs inner.sh inside a throw-away PostgreSQL cluster with fsync on and prints the
# results table (also saved under build-bench/results/). See docs/BENCHMARKS.md.
#
#   BENCH_QUICK=1 make bench     smoke run, < 2 minutes (short windows, 10,000 rows)
#   make bench                   full run (20 s windows, 200,000 rows; about 5–10 minutes)
# Knobs (env): BENCH_DURATION BENCH_WARMUP BENCH_ROWS BENCH_CLIENTS BENCH_GW_JOBS BENCH_E2E_RATE
#   BENCH_DRAIN_CONCURRENCY BENCH_DRAIN_BATCH BENCH_ROWS_PER_MAILBOX BENCH_POOL_SIZE
#   BENCH_LOADGEN_THREADS BENCH_RECEIVER_THREADS BENCH_PGBENCH_BATCH BENCH_PGBENCH_DRAIN_CLIENTS
#   BENCH_PHASES (subset of "ingress pgbench drain tls pgdrain graphile e2e drainlat"), BENCH_DRAIN_LATENCY_RATE (10000), BENCH_KEEP=1 (keep the work dir)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
[ -x build/outboxd ] || { echo "bench: build/outboxd missing: run make first" >&2; exit 1; }
for tool in pg_virtualenv pgbench psql openssl curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (apt-get install postgresql postgresql-contrib openssl curl python3)" >&2; exit 1; }
done
load=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load" 'BEGIN { exit !(l > 1.5) }'; then
  echo "bench: WARNING: 1-minute load average is $load on $(nproc) CPUs: other work competes with the" >&2
  echo "bench: benchmark and the figures will be low. Prefer an idle machine (or BENCH_QUICK=1 for a smoke run)." >&2
fi

tests/bench/build.sh

export GW_STATUS=""
if [ ! -f tests/bench/node_modules/graphile-worker/package.json ]; then
  # The peer needs Node.js and npm (Debian's nodejs 18 runs graphile-worker 0.17.3).
  command -v npm >/dev/null || { (apt-get install -y -qq nodejs npm >/dev/null 2>&1 || sudo apt-get install -y -qq nodejs npm >/dev/null 2>&1) || true; }
  if ! command -v npm >/dev/null; then
    GW_STATUS="npm not installed"
  elif ! (cd tests/bench && timeout 300 npm ci --no-audit --no-fund >"$root/build-bench/npm.log" 2>&1); then
    GW_STATUS="npm install graphile-worker@0.17.3 pg failed: $(grep -m1 -iE 'err|fail' build-bench/npm.log | cut -c1-120)"
  fi
  [ -z "$GW_STATUS" ] || echo "bench: Graphile Worker peer unavailable: $GW_STATUS" >&2
fi

export BENCH_RESULTS_DIR=${BENCH_RESULTS_DIR:-$root/build-bench/results}
export WORK
WORK=$(mktemp -d /tmp/outboxd-bench.XXXXXX)
chmod 755 "$WORK"
trap '[ "${BENCH_KEEP:-0}" = 1 ] && echo "bench: kept $WORK" >&2 || rm -rf "$WORK"' EXIT
# -t: cluster in a temporary directory even as root; fsync stays on (the default, spelt out).
# The cluster is set up as ops/RUNBOOK.md advises for an outbox ("Slow webhook answers", "Table
# health"): with stock settings a 700 MB vacuum every minute and a checkpoint every 30-40 s stall
# the WAL flush that every answer waits for (docs/BENCHMARKS.md, findings 25 and 28), and the
# daemon itself warns about the default naptime. BENCH_PG_OPTIONS replaces these settings
# ("name=value …"); BENCH_PG_OPTIONS="" runs PostgreSQL's defaults.
BENCH_PG_OPTIONS=${BENCH_PG_OPTIONS-shared_buffers=1GB max_wal_size=4GB checkpoint_timeout=15min autovacuum_naptime=10s}
pg_options=(-o fsync=on -o synchronous_commit=on -o max_connections=300)
for o in $BENCH_PG_OPTIONS; do pg_options+=(-o "$o"); done
export BENCH_PG_OPTIONS
pg_virtualenv -t "${pg_options[@]}" bash tests/bench/inner.sh
