# Helpers shared by inner.sh (make bench) and soak_inner.sh (make soak). Sourced inside
# pg_virtualenv, so PGPORT/PGUSER/PGPASSWORD/PGHOST point at the throw-away cluster.
# shellcheck shell=bash disable=SC2034  # variables here are used by the scripts that source this

ROOT=${ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BENCH_SRC="$ROOT/tests/bench"
BENCH_BIN=${BENCH_BUILD_DIR:-$ROOT/build-bench}
OUTBOXD=${OUTBOXD:-$ROOT/build/outboxd}
CLK_TCK=$(getconf CLK_TCK)
WORK=${WORK:?WORK must name a scratch directory (run.sh and soak.sh set it)}
REGION_SECRET=bench-region-secret
GITHUB_SECRET=bench-github-secret
INSTALLATION_BASE=1000000
MAILBOXES=${BENCH_MAILBOXES:-1000}
BG_PIDS=()

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
now() { date +%s.%N; }
fdiv() { awk -v a="$1" -v b="$2" -v f="${3:-%.1f}" 'BEGIN { if (b == 0) print "n/a"; else printf f "\n", a / b }'; }
calc() { awk "BEGIN { printf \"${2:-%.1f}\\n\", $1 }"; }
kv() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p" | head -1; }  # kv "a=1 b=2" b → 2

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# psql against the bench database; -v ON_ERROR_STOP so a broken statement stops the run.
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "${BENCH_DB:-bench}" "$@"; }

# --- CPU and memory from /proc --------------------------------------------------------------
# utime+stime of a process in clock ticks (stat fields 14 and 15; once "pid (comm) " is cut off,
# field k is word k-2); proc_ticks_all adds its reaped children's (cutime+cstime, fields 16, 17).
# One awk per call, no subshell per process: sampling must stay cheap and quick.
proc_ticks() { awk '{ sub(/^.*\) /, ""); s += $12 + $13 } END { print s + 0 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
proc_ticks_all() { awk '{ sub(/^.*\) /, ""); s += $12 + $13 + $14 + $15 } END { print s + 0 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# All of PostgreSQL: the postmaster with its reaped children plus every live child.
pg_ticks() {
  local files=("/proc/$PG_POSTMASTER/stat") c
  for c in $(pgrep -P "$PG_POSTMASTER"); do files+=("/proc/$c/stat"); done
  cat "${files[@]}" 2>/dev/null |
    awk -v pm="$PG_POSTMASTER" '{ pid = $1; sub(/^.*\) /, ""); s += $12 + $13; if (pid == pm) s += $14 + $15 } END { print s + 0 }'
}
# Busy ticks of the whole machine (everything but idle and iowait), from /proc/stat.
machine_ticks() { awk '/^cpu /{ print $2+$3+$4+$7+$8+$9 }' /proc/stat; }
status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# cpu_snapshot NAME PID...: remembers ticks of outboxd, postgres, the given extra pids and the machine.
# cpu_report NAME SECONDS LABEL=PID...: prints "label=cores ..." for the window since the snapshot.
declare -A SNAP
cpu_snapshot() {
  local name=$1; shift
  SNAP[$name.t]=$(now)
  SNAP[$name.machine]=$(machine_ticks)
  SNAP[$name.postgres]=$(pg_ticks)
  local kvp
  for kvp in "$@"; do SNAP[$name.${kvp%%=*}]=$(proc_ticks "${kvp#*=}"); done
}
cpu_report() {
  local name=$1; shift
  local secs ncpu out="" sum=0 kvp label pid d
  secs=$(awk -v a="${SNAP[$name.t]}" -v b="$(now)" 'BEGIN { print b - a }')
  ncpu=$(nproc)
  d=$(( $(pg_ticks) - ${SNAP[$name.postgres]} )); sum=$(( sum + d ))
  out="postgres=$(awk -v d=$d -v s="$secs" -v h=$CLK_TCK 'BEGIN { printf "%.2f", d / h / s }')"
  for kvp in "$@"; do
    label=${kvp%%=*}; pid=${kvp#*=}
    d=$(( $(proc_ticks "$pid") - ${SNAP[$name.$label]:-0} )); sum=$(( sum + d ))
    out+=" $label=$(awk -v d=$d -v s="$secs" -v h=$CLK_TCK 'BEGIN { printf "%.2f", d / h / s }')"
  done
  d=$(( $(machine_ticks) - ${SNAP[$name.machine]} ))
  out+=" machine=$(awk -v d=$d -v s="$secs" -v h=$CLK_TCK 'BEGIN { printf "%.2f", d / h / s }')"
  out+=" other=$(awk -v d=$d -v m=$sum -v s="$secs" -v h=$CLK_TCK 'BEGIN { o = (d - m) / h / s; if (o < 0) o = 0; printf "%.2f", o }')"
  out+=" of=$ncpu window_s=$(printf %.2f "$secs")"
  echo "$out"
}

# --- the cluster, the schema, the daemon ------------------------------------------------------
db_setup() {
  local sock
  sock=$(psql -X -A -t -d postgres -c "SHOW unix_socket_directories" | cut -d, -f1 | xargs)
  PG_SOCKET=${sock:-/var/run/postgresql}
  # Everything connects over the Unix socket (outboxd's default database.url does too); the
  # throw-away cluster only allows peer auth there, and this script may run as root: trust it.
  local hba
  hba=$(psql -X -A -t -d postgres -c "SHOW hba_file")
  if ! grep -q '^local all all trust # bench' "$hba"; then
    { echo 'local all all trust # bench'; cat "$hba"; } >"$hba.new" && cat "$hba.new" >"$hba" && rm -f "$hba.new"
    psql -X -q -A -t -d postgres -c "SELECT pg_reload_conf()" >/dev/null
    sleep 0.2
  fi
  PG_POSTMASTER=$(head -1 "$(psql -X -A -t -d postgres -c 'SHOW data_directory')/postmaster.pid")
  DB_URL="postgresql:///bench?host=$PG_SOCKET&port=$PGPORT"
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bench" -c "CREATE DATABASE bench" >/dev/null
  # BENCH_DB_SETTINGS="name=value ...": per-database settings for A/B runs, e.g.
  # plan_cache_mode=force_custom_plan. Every session of outboxd picks them up.
  local kvp
  for kvp in ${BENCH_DB_SETTINGS:-}; do
    psql -X -q -d postgres -c "ALTER DATABASE bench SET ${kvp%%=*} = '${kvp#*=}'" >/dev/null
  done
  write_config "$WORK/migrate.toml" 1 1 "http://127.0.0.1:1"
  "$OUTBOXD" migrate --config "$WORK/migrate.toml" >/dev/null
  # 1,000 GitHub App installations (external ids 1000001…), each with one organization in region
  # "us": webhook k lands in mailbox github:k, like a fleet of customers on one region.
  q <<SQL
INSERT INTO integration (id, provider, external_id, name, status, metadata)
  SELECT i, 'github', ($INSTALLATION_BASE + i)::text, 'bench-' || i, 'active', '{}' FROM generate_series(1, $MAILBOXES) i;
INSERT INTO organization_mapping (organization_id, slug, region_name)
  SELECT i, 'org-' || i, 'us' FROM generate_series(1, $MAILBOXES) i;
INSERT INTO organization_integration (organization_id, integration_id, status)
  SELECT i, i, 'active' FROM generate_series(1, $MAILBOXES) i;
ANALYZE;
SQL
}

# write_config FILE INGRESS_PORT METRICS_PORT REGION_URL [extra TOML]
write_config() {
  cat >"$1" <<TOML
[database]
url = "$DB_URL"
pool_size = ${BENCH_POOL_SIZE:-16}

[ingress]
listen = "127.0.0.1:$2"

[metrics]
listen = "127.0.0.1:$3"

[drain]
concurrency = ${BENCH_DRAIN_CONCURRENCY:-512}
batch_size = ${BENCH_DRAIN_BATCH:-512}
rows_per_mailbox = ${BENCH_ROWS_PER_MAILBOX:-50}
request_timeout = "10s"

[retry]
base_delay = "1s"
max_delay = "1m"

[[region]]
name = "us"
url = "$4"
secret = "$REGION_SECRET"

[provider.github]
webhook_secret = "$GITHUB_SECRET"

[log]
level = "warn"
${5:-}
TOML
}

# start_outboxd ROLE CONFIG METRICS_PORT → OUTBOXD_PID (waits for /readyz)
start_outboxd() {
  "$OUTBOXD" --config "$2" --role "$1" >>"$WORK/outboxd.log" 2>&1 &
  OUTBOXD_PID=$!
  BG_PIDS+=("$OUTBOXD_PID")
  local i
  for i in $(seq 100); do
    curl -sf "http://127.0.0.1:$3/readyz" >/dev/null 2>&1 && return 0
    kill -0 "$OUTBOXD_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "outboxd did not become ready; log:"; tail -20 "$WORK/outboxd.log" >&2
  return 1
}

stop_pid() {
  [ -n "${1:-}" ] || return 0
  kill "$1" 2>/dev/null || true
  local i
  for i in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

cleanup_bg() {
  local p
  for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}

# start_receiver NAME [--tls-cert F --tls-key F] → ${NAME}_PORT, ${NAME}_STATS, ${NAME}_PID
start_receiver() {
  local name=$1; shift
  local port stats
  port=$(free_port); stats=$(free_port)
  "$BENCH_BIN/receiver" --port "$port" --stats-port "$stats" --threads "${BENCH_RECEIVER_THREADS:-2}" "$@" \
    >"$WORK/receiver-$name.log" 2>&1 &
  local pid=$!
  BG_PIDS+=("$pid")
  printf -v "${name}_PORT" %s "$port"; printf -v "${name}_STATS" %s "$stats"; printf -v "${name}_PID" %s "$pid"
  local i
  for i in $(seq 50); do curl -sf "http://127.0.0.1:$stats/stats" >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "receiver $name did not start"; cat "$WORK/receiver-$name.log" >&2; return 1
}
receiver_stats() { curl -sf "http://127.0.0.1:$1/stats"; }
receiver_reset() { curl -sf -X POST "http://127.0.0.1:$1/reset" >/dev/null; }
receiver_count() { kv "$(receiver_stats "$1")" count; }

# The stored form of a GitHub push webhook, as the ingress writes it: headers as a JSON array of
# pairs, the body byte for byte (tests/fixtures/github/push.json, 1.7 KB).
PUSH_BODY_FILE="$ROOT/tests/fixtures/github/push.json"
STORED_HEADERS='[["User-Agent","GitHub-Hookshot/bench"],["Content-Type","application/json"],["X-GitHub-Event","push"],["X-GitHub-Delivery","72d3162e-cc78-11e3-81ab-4c9367dc0958"],["X-GitHub-Hook-ID","292430182"],["X-Hub-Signature-256","sha256=0a2e9b6bd3a56bbc02ff0cc5b4d5ab8c8d0d0a3bb0f7f3fb5d6c1e4f0a9c8b7d"]]'

# preinsert_rows N: N rows over $MAILBOXES mailboxes, interleaved (row i → mailbox i mod M), so each
# mailbox holds N/M rows in id order; then VACUUM ANALYZE and CHECKPOINT so runs start alike.
preinsert_rows() {
  q -v body="$(cat "$PUSH_BODY_FILE")" -v headers="$STORED_HEADERS" <<SQL
TRUNCATE control_outbox;
INSERT INTO control_outbox (region_name, mailbox_name, provider, integration_id, request_path, request_headers, request_body)
SELECT 'us', 'github:' || (i % $MAILBOXES + 1), 'github', i % $MAILBOXES + 1, '/extensions/github/webhook/',
       :'headers'::jsonb, convert_to(:'body', 'UTF8')
FROM generate_series(0, $1 - 1) i;
SQL
  q -c "VACUUM ANALYZE control_outbox" -c "CHECKPOINT" >/dev/null
}

outbox_empty() { [ "$(q -c "SELECT NOT EXISTS (SELECT 1 FROM control_outbox)")" = t ]; }

# wait_for SECONDS CMD...: polls CMD every 50 ms; returns 1 on timeout.
wait_for() {
  local deadline
  deadline=$(awk -v n="$(now)" -v s="$1" 'BEGIN { printf "%.3f\n", n + s }'); shift
  while ! "$@"; do
    awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }' && return 1
    sleep 0.05
  done
}
receiver_has() { [ "$(receiver_count "$1")" -ge "$2" ] 2>/dev/null; }

metrics() { curl -sf "http://127.0.0.1:$1/metrics"; }
