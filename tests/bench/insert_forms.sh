#!/usr/bin/env bash
# Finding 31: PostgreSQL's CPU per outbox row for the writer's INSERT, the same with its NOTIFY,
# and COPY (FORMAT binary), at two batch sizes, in a throw-away cluster with fsync on.
# Usage: tests/bench/insert_forms.sh   (after `make`; about a minute)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out="${BENCH_BUILD_DIR:-$root/build-bench}"
mkdir -p "$out"
g++ -std=c++20 -O2 -Wall -Wextra -Werror -I/usr/include/postgresql -o "$out/insert_forms" \
  "$root/tests/bench/insert_forms.cpp" -lpq
export OUTBOXD="${OUTBOXD:-$root/build/outboxd}" INSERT_FORMS="$out/insert_forms"
pg_virtualenv -t -o fsync=on -o shared_buffers=1GB -o max_wal_size=4GB bash -c '
  set -euo pipefail
  work=$(mktemp -d)
  trap "rm -rf $work" EXIT
  printf "[database]\nurl = \"postgresql://%s:%s@%s:%s/%s\"\n[[region]]\nname = \"us\"\nurl = \"http://127.0.0.1:1\"\nsecret = \"s\"\n" \
    "$PGUSER" "$PGPASSWORD" "$PGHOST" "$PGPORT" "$PGDATABASE" >"$work/migrate.toml"
  "$OUTBOXD" migrate --config "$work/migrate.toml" >/dev/null
  echo "| form | rows per batch | rows | PostgreSQL µs per row | rows/s (one session) |"
  echo "|---|---|---|---|---|"
  for round in 1 2; do
    for per in 16 64; do
      for form in unnest unnest+notify copy; do
        psql -qXc "TRUNCATE control_outbox" -c "CHECKPOINT" >/dev/null
        "$INSERT_FORMS" "$form" $((32000 / per)) "$per"
      done
    done
  done'
