#!/usr/bin/env bash
# The benchmark proper; run.sh starts it inside a throw-away PostgreSQL (pg_virtualenv, fsync on).
# Phases, one after the other on the same cluster so the figures share a machine state:
#   1 ingress        outboxd --role ingress, loadgen closed loop (max rate)
#   2 pgbench insert single-row INSERT of the same row shape, same client count
#   3 drain          N rows pre-inserted by SQL, outboxd --role drain → plain HTTP receiver
#   4 drain TLS      the same to an https://localhost receiver
#   5 pgbench drain  SKIP LOCKED claim of 100 rows + DELETE … RETURNING, until empty
#   6 Graphile       Graphile Worker 0.17.3 draining N no-op jobs over 1,000 queues
#   7 end to end     outboxd --role all: probe the max, then half of it at a fixed rate
#   8 drain latency  rows enqueued by SQL (pgbench, fixed rate, 10 per statement, NOTIFY trigger)
#                    → outboxd --role drain; age from insert to the receiver (issue 3's latency)
# BENCH_PHASES selects phases (default: "ingress pgbench drain tls pgdrain graphile e2e drainlat").
# Writes key=value results to $WORK/results.env and prints the table (benchlib.py table).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib.sh
source "$ROOT/tests/bench/lib.sh"
trap cleanup_bg EXIT

QUICK=${BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
  mode=quick; DUR=${BENCH_DURATION:-5}; WARM=${BENCH_WARMUP:-1}; ROWS=${BENCH_ROWS:-10000}
  PROBE=${BENCH_PROBE:-4}; E2E_DUR=${BENCH_E2E_DURATION:-5}
else
  mode=full; DUR=${BENCH_DURATION:-20}; WARM=${BENCH_WARMUP:-3}; ROWS=${BENCH_ROWS:-200000}
  PROBE=${BENCH_PROBE:-15}; E2E_DUR=${BENCH_E2E_DURATION:-30}
fi
CLIENTS=${BENCH_CLIENTS:-64}
# More client counts for the ingress and its pgbench reference (shorter windows): how far group
# commit goes when providers send with more concurrency. Empty to skip.
SWEEP=${BENCH_INGRESS_SWEEP-128 256}
SWEEP_DUR=$(( DUR > 10 ? 10 : DUR ))
LG_THREADS=${BENCH_LOADGEN_THREADS:-2}
GW_JOBS=${BENCH_GW_JOBS:-$ROWS}
PGB_BATCH=${BENCH_PGBENCH_BATCH:-100}
PGB_DRAIN_CLIENTS=${BENCH_PGBENCH_DRAIN_CLIENTS:-4}
DRAIN_TIMEOUT=${BENCH_DRAIN_TIMEOUT:-600}
# CPU windows end 0.5 s before the load generator stops, so that it is still there to be read.
INNER=$(awk -v d="$DUR" 'BEGIN { print (d > 1 ? d - 0.5 : d) }')
PHASES=" ${BENCH_PHASES:-ingress pgbench drain tls pgdrain graphile e2e drainlat} "
want() { [[ $PHASES == *" $1 "* ]]; }
RES="$WORK/results.env"
: >"$RES"
res() { echo "$1=$2" >>"$RES"; }

res mode "$mode"
res date "$(date -u +%Y-%m-%dT%H:%MZ)"
res git "$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
build_stamp=$(stat -c %Y "$OUTBOXD")
res outboxd_built "$(date -u -d "@$build_stamp" +%Y-%m-%dT%H:%MZ)"
res nproc "$(nproc)"
res cpu_model "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
res mem "$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
res loadavg_start "$(cut -d' ' -f1-3 /proc/loadavg)"
awk '{ exit !($1 > 1.5) }' /proc/loadavg && res busy 1
res clients "$CLIENTS"
res sweep "$SWEEP"
res mailboxes "$MAILBOXES"
res rows "$ROWS"
res gw_jobs "$GW_JOBS"
res pgb_batch "$PGB_BATCH"
res pgb_drain_clients "$PGB_DRAIN_CLIENTS"
res drain_concurrency "${BENCH_DRAIN_CONCURRENCY:-512}"
res drain_batch "${BENCH_DRAIN_BATCH:-512}"
res rows_per_mailbox "${BENCH_ROWS_PER_MAILBOX:-50}"
res pool_size "${BENCH_POOL_SIZE:-16}"
res loadgen_threads "$LG_THREADS"
res receiver_threads "${BENCH_RECEIVER_THREADS:-2}"
res db_settings "${BENCH_DB_SETTINGS:-none}"
res pg_options "${BENCH_PG_OPTIONS:-none}"

log "bench: $mode run in $WORK (duration ${DUR}s, warm-up ${WARM}s, $ROWS rows, $CLIENTS clients)"
db_setup
res pg_version "$(psql -X -A -t -d postgres -c 'SHOW server_version' | cut -d' ' -f1)"
res pg_fsync "$(psql -X -A -t -d postgres -c 'SHOW fsync')"
res pg_sync_commit "$(psql -X -A -t -d postgres -c 'SHOW synchronous_commit')"
res pg_shared_buffers "$(psql -X -A -t -d postgres -c 'SHOW shared_buffers')"

start_receiver PLAIN
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost -keyout "$WORK/tls-key.pem" -out "$WORK/tls-cert.pem" 2>/dev/null
start_receiver TLS --tls-cert "$WORK/tls-cert.pem" --tls-key "$WORK/tls-key.pem"

# An array, not a function: started with &, $! is then the load generator itself (its CPU is read).
LOADGEN=("$BENCH_BIN/loadgen" --connections "$CLIENTS" --threads "$LG_THREADS" --secret "$GITHUB_SECRET"
         --installations "$MAILBOXES" --installation-base "$INSTALLATION_BASE")

# ------------------------------------------------------------------------------ 1 ingress
if want ingress; then
log "1/8 ingress: loadgen, $CLIENTS connections, ${DUR}s at max rate"
IP=$(free_port); MP=$(free_port)
write_config "$WORK/ingress.toml" "$IP" "$MP" "http://127.0.0.1:$PLAIN_PORT"
start_outboxd ingress "$WORK/ingress.toml" "$MP"
"${LOADGEN[@]}" --port "$IP" --duration 1 --warmup 0 >/dev/null  # first connections, prepared statements
"${LOADGEN[@]}" --port "$IP" --duration "$DUR" --warmup "$WARM" >"$WORK/ingress.out" &
LG=$!
sleep "$WARM"
cpu_snapshot ing outboxd="$OUTBOXD_PID" loadgen="$LG"
metrics "$MP" >"$WORK/ingress.before"
sleep "$INNER"
res cpu_ingress "$(cpu_report ing outboxd="$OUTBOXD_PID" loadgen="$LG")"
metrics "$MP" >"$WORK/ingress.after"
wait "$LG"
out=$(cat "$WORK/ingress.out")
log "  $out"
res ingress_rate "$(kv "$out" rate)"
res ingress_p50 "$(kv "$out" p50_ms | xargs printf %.2f)"
res ingress_p99 "$(kv "$out" p99_ms | xargs printf %.2f)"
res ingress_errors "$(( $(kv "$out" non2xx) + $(kv "$out" errors) ))"
res ingress_batch "$(python3 "$BENCH_SRC/benchlib.py" ratio "$WORK/ingress.before" "$WORK/ingress.after" \
  outboxd_ingress_commit_batch_size_sum outboxd_ingress_commit_batch_size_count)"
stored=$(q -c "SELECT count(*) FROM control_outbox")
log "  rows stored: $stored (answered 2xx in the window: $(kv "$out" ok))"
for n in $SWEEP; do
  log "  ingress with $n connections, ${SWEEP_DUR}s"
  metrics "$MP" >"$WORK/ingress_$n.before"
  out=$("$BENCH_BIN/loadgen" --connections "$n" --threads "$LG_THREADS" --secret "$GITHUB_SECRET" \
    --installations "$MAILBOXES" --installation-base "$INSTALLATION_BASE" \
    --port "$IP" --duration "$SWEEP_DUR" --warmup "$WARM")
  metrics "$MP" >"$WORK/ingress_$n.after"
  log "  $out"
  res "ingress_${n}_rate" "$(kv "$out" rate)"
  res "ingress_${n}_p50" "$(kv "$out" p50_ms | xargs printf %.2f)"
  res "ingress_${n}_p99" "$(kv "$out" p99_ms | xargs printf %.2f)"
  res "ingress_${n}_batch" "$(python3 "$BENCH_SRC/benchlib.py" ratio "$WORK/ingress_$n.before" "$WORK/ingress_$n.after" \
    outboxd_ingress_commit_batch_size_sum outboxd_ingress_commit_batch_size_count)"
done
stop_pid "$OUTBOXD_PID"
fi

# ------------------------------------------------------------------------------ 2 pgbench insert
# Two figures at the same client count, one row per transaction (autocommit), prepared statements:
#   pgb_insert        into bench_insert, a copy of control_outbox without its NOTIFY trigger: the
#                     single-row commit limit with PostgreSQL's own group commit of WAL flushes;
#   pgb_insert_1      the same with one client: the commit latency of this disk (fsync);
#   pgb_insert_notify into control_outbox itself, with whatever triggers the schema gives it: a
#                     statement-level NOTIFY trigger (migrations before commit 383a712) makes
#                     PostgreSQL serialise commits (PreCommit_Notify holds a global lock across
#                     the WAL flush), so that is about one commit per fsync.
if want pgbench; then
log "2/8 pgbench: single-row INSERT, $CLIENTS clients, ${DUR}s (without and with the NOTIFY trigger)"
q -c "TRUNCATE control_outbox" -c "CREATE TABLE bench_insert (LIKE control_outbox INCLUDING ALL)" -c "CHECKPOINT" >/dev/null
body_hex=$(od -An -v -tx1 "$PUSH_BODY_FILE" | tr -d ' \n')
pgbench_insert() {  # NAME TABLE SECONDS [CLIENTS]
  cat >"$WORK/$1.sql" <<SQL
\set m random(1, $MAILBOXES)
INSERT INTO $2 (region_name, mailbox_name, provider, integration_id, request_path, request_headers, request_body) VALUES ('us', 'github:' || :m, 'github', :m, '/extensions/github/webhook/', '$STORED_HEADERS'::jsonb, '\\x$body_hex'::bytea);
SQL
  rm -f "$WORK/$1".[0-9]*
  pgbench -n -M prepared -c "${4:-$CLIENTS}" -j "$(( ${4:-$CLIENTS} > 1 ? 2 : 1 ))" -T "$(( $3 + WARM + 1 ))" -l --log-prefix="$WORK/$1" \
    -f "$WORK/$1.sql" bench >"$WORK/$1.out" 2>&1 &
  local pb=$!
  sleep "$WARM"; cpu_snapshot "$1" pgbench="$pb"; sleep "$3"  # pgbench runs 1 s longer
  res "cpu_$1" "$(cpu_report "$1" pgbench="$pb")"
  wait "$pb" || { cat "$WORK/$1.out" >&2; exit 1; }
  local tps p50 p99
  tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$WORK/$1.out")
  read -r p50 p99 < <(cat "$WORK/$1".[0-9]* 2>/dev/null | python3 "$BENCH_SRC/benchlib.py" pgbench-log 0.5 0.99)
  log "  $2: tps=$tps p50=${p50}ms p99=${p99}ms"
  res "$1_tps" "$tps"; res "$1_p50" "$p50"; res "$1_p99" "$p99"
  rm -f "$WORK/$1".[0-9]*
}
pgbench_insert pgb_insert bench_insert "$DUR"
for n in $SWEEP; do pgbench_insert "pgb_insert_$n" bench_insert "$SWEEP_DUR" "$n"; done
# One client: the commit (WAL fsync) latency of this disk, for the machine description.
pgbench_insert pgb_insert_1 bench_insert 3 1
res pgb_outbox_triggers "$(q -c "SELECT coalesce(string_agg(tgname, ','), 'none') FROM pg_trigger WHERE tgrelid = 'control_outbox'::regclass AND NOT tgisinternal")"
pgbench_insert pgb_insert_notify control_outbox "$(( DUR > 10 ? 10 : DUR ))"
q -c "DROP TABLE bench_insert" -c "TRUNCATE control_outbox" >/dev/null
fi

# ------------------------------------------------------------------------------ 3, 4 drain
# drain NAME URL [extra TOML]: pre-insert $ROWS rows, start outboxd --role drain, time until the
# outbox is empty; CPU and RSS of the daemon over the run.
drain() {
  local name=$1 url=$2 extra=${3:-} stats pid
  stats=$([ "$name" = tls ] && echo "$TLS_STATS" || echo "$PLAIN_STATS")
  pid=$([ "$name" = tls ] && echo "$TLS_PID" || echo "$PLAIN_PID")
  preinsert_rows "$ROWS"
  receiver_reset "$stats"
  local ip mp t0 t1 rss=0 r
  ip=$(free_port); mp=$(free_port)
  write_config "$WORK/drain-$name.toml" "$ip" "$mp" "$url" "$extra"
  cpu_snapshot "dr$name" receiver="$pid"
  t0=$(now)
  "$OUTBOXD" --config "$WORK/drain-$name.toml" --role drain >>"$WORK/outboxd.log" 2>&1 &
  OUTBOXD_PID=$!; BG_PIDS+=("$OUTBOXD_PID")
  local deadline
  deadline=$(awk -v n="$t0" -v s="$DRAIN_TIMEOUT" 'BEGIN { printf "%.3f\n", n + s }')
  while ! receiver_has "$stats" "$ROWS"; do
    r=$(status_kb "$OUTBOXD_PID" VmRSS); [ "${r:-0}" -gt "$rss" ] && rss=$r
    kill -0 "$OUTBOXD_PID" 2>/dev/null || { log "outboxd exited"; tail -20 "$WORK/outboxd.log" >&2; return 1; }
    awk -v n="$(now)" -v d="$deadline" 'BEGIN { exit !(n > d) }' && { log "drain $name: timeout"; break; }
    sleep 0.2
  done
  res "cpu_$name" "$(cpu_report "dr$name" outboxd="$OUTBOXD_PID" receiver="$pid")"
  wait_for 60 outbox_empty || log "drain $name: outbox not empty after 60 s"
  t1=$(now)
  local hwm stats_line left dead
  hwm=$(status_kb "$OUTBOXD_PID" VmHWM)
  metrics "$mp" >"$WORK/drain-$name.metrics"
  stats_line=$(receiver_stats "$stats")
  left=$(q -c "SELECT count(*) FROM control_outbox"); dead=$(q -c "SELECT count(*) FROM control_outbox_dead")
  stop_pid "$OUTBOXD_PID"
  local rate
  rate=$(awk -v n="$ROWS" -v l="$left" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (n - l) / (b - a) }')
  log "  $name: $rate rows/s until empty ($(kv "$stats_line" count) received, $(kv "$stats_line" retries) retries, receiver window rate $(kv "$stats_line" rate)/s); left=$left dead=$dead RSS peak $((hwm / 1024)) MB"
  res "${name}_rate" "$rate"
  res "${name}_received" "$(kv "$stats_line" count)"
  res "${name}_window_rate" "$(kv "$stats_line" rate)"
  res "${name}_left" "$left"; res "${name}_dead" "$dead"
  res "${name}_rss_mb" "$((hwm / 1024))"
  res "${name}_rss_sampled_mb" "$((rss / 1024))"
  res "${name}_connections" "$(python3 "$BENCH_SRC/benchlib.py" sum "$WORK/drain-$name.metrics" outboxd_delivery_connections_total)"
  q -c "TRUNCATE control_outbox_dead" >/dev/null
}

if want drain; then
log "3/8 drain: $ROWS rows over $MAILBOXES mailboxes → plain HTTP keep-alive receiver"
drain drain "http://127.0.0.1:$PLAIN_PORT"
# CPU per 1,000 deliveries/s = CPU-seconds the daemon spent per 1,000 deliveries (over the window
# from its start to the last delivery, in which all $ROWS rows were delivered).
cpu_line=$(grep '^cpu_drain=' "$RES" | cut -d= -f2-)
cores=$(kv "$cpu_line" outboxd)
res drain_cpu_outboxd "$cores"
res drain_cpu_per_k "$(awk -v c="$cores" -v w="$(kv "$cpu_line" window_s)" -v n="$ROWS" 'BEGIN { printf "%.3f", c * w / n * 1000 }')"
fi

if want tls; then
log "4/8 drain over TLS: https://localhost:$TLS_PORT"
drain tls "https://localhost:$TLS_PORT" "$(printf '\n[tls]\nca_file = "%s"\n' "$WORK/tls-cert.pem")"
fi

# ------------------------------------------------------------------------------ 5 pgbench drain
if want pgdrain; then
log "5/8 pgbench: SKIP LOCKED claim of $PGB_BATCH rows + DELETE, $PGB_DRAIN_CLIENTS clients, until empty"
preinsert_rows "$ROWS"
cat >"$WORK/claim_delete.sql" <<SQL
WITH c AS (SELECT id FROM control_outbox WHERE scheduled_for <= now() ORDER BY id LIMIT $PGB_BATCH FOR UPDATE SKIP LOCKED) DELETE FROM control_outbox o USING c WHERE o.id = c.id RETURNING o.id, o.mailbox_name, o.request_headers, o.request_body;
SQL
per_client=$(( ROWS / PGB_BATCH / PGB_DRAIN_CLIENTS ))
t0=$(now)
pgbench -n -M prepared -c "$PGB_DRAIN_CLIENTS" -j "$PGB_DRAIN_CLIENTS" -t "$per_client" -f "$WORK/claim_delete.sql" bench \
  >"$WORK/pgb_drain.out" 2>&1 &
PB=$!
cpu_snapshot pgbd pgbench="$PB"
wait "$PB" || { cat "$WORK/pgb_drain.out" >&2; exit 1; }
res cpu_pgb_drain "$(cpu_report pgbd)"  # pgbench has exited: postgres and the machine only
tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$WORK/pgb_drain.out")
left=$(q -c "SELECT count(*) FROM control_outbox")
rate=$(awk -v t="$tps" -v b="$PGB_BATCH" -v n="$ROWS" -v l="$left" 'BEGIN { printf "%.1f", t * b * (n - l) / n }')
log "  tps=$tps → $rate rows/s (left in table: $left)"
res pgb_drain_rate "$rate"; res pgb_drain_left "$left"
fi

# ------------------------------------------------------------------------------ 6 Graphile Worker
if want graphile; then
if [ -f "$BENCH_SRC/node_modules/graphile-worker/package.json" ]; then
  log "6/8 Graphile Worker: $GW_JOBS no-op jobs over $MAILBOXES queues"
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS gwbench" -c "CREATE DATABASE gwbench" >/dev/null
  if out=$(GW_DATABASE_URL="postgresql:///gwbench?host=$PG_SOCKET&port=$PGPORT" GW_JOBS="$GW_JOBS" GW_QUEUES="$MAILBOXES" \
      GW_PAYLOAD_FILE="$PUSH_BODY_FILE" GW_TIMEOUT_S="$DRAIN_TIMEOUT" node "$BENCH_SRC/graphile_bench.mjs" 2>"$WORK/graphile.err"); then
    log "  $out"
    res gw_rate "$(kv "$out" rate)"; res gw_version "$(kv "$out" version)"
  else
    log "  Graphile Worker run failed: $(tail -3 "$WORK/graphile.err")"
    res gw_status "run failed: $(tail -1 "$WORK/graphile.err" | tr -d '|')"
  fi
else
  log "6/8 Graphile Worker: skipped (${GW_STATUS:-node_modules missing})"
  res gw_status "${GW_STATUS:-npm install graphile-worker@0.17.3 pg did not complete}"
fi
fi

# ------------------------------------------------------------------------------ 7 end to end
if want e2e; then
log "7/8 end to end: outboxd --role all; probe the max for ${PROBE}s, then half of it for ${E2E_DUR}s"
q -c "TRUNCATE control_outbox" -c "VACUUM ANALYZE control_outbox" -c "CHECKPOINT" >/dev/null
IP=$(free_port); MP=$(free_port)
write_config "$WORK/all.toml" "$IP" "$MP" "http://127.0.0.1:$PLAIN_PORT"
start_outboxd all "$WORK/all.toml" "$MP"
"${LOADGEN[@]}" --port "$IP" --duration "$PROBE" --warmup 1 >"$WORK/probe.out" &
LG=$!
sleep 1; c0=$(receiver_count "$PLAIN_STATS"); sleep "$PROBE"; c1=$(receiver_count "$PLAIN_STATS")
wait "$LG"
accepted=$(kv "$(cat "$WORK/probe.out")" rate)
delivered=$(fdiv "$((c1 - c0))" "$PROBE")
max=$(awk -v a="$accepted" -v d="$delivered" 'BEGIN { printf "%.0f", a < d ? a : d }')
log "  probe: accepted $accepted/s, delivered $delivered/s → sustainable max $max/s"
wait_for 300 outbox_empty || log "  backlog of the probe not drained after 300 s"
# Each window measures half load from a clean table: without this, the first one also carried the
# vacuum of the probe's ~140,000 dead rows and their WAL, which stalled the commits of its first
# seconds (p99 57-266 ms against 25-30 ms in the window after it, with either binary of an A/B).
settle() { q -c "VACUUM control_outbox" -c "CHECKPOINT" >/dev/null; }
settle
rate=${BENCH_E2E_RATE:-$(( max / 2 ))}
res e2e_max "$max"; res e2e_rate_target "$rate"
# Two open-loop windows at the same rate: the provider's pool of 64 connections (any idle one
# takes the next due webhook), then wrk2's schedule (each connection every 64/rate s, so one slow
# answer delays that connection's next requests). The first is the headline; the second shows how
# much of the tail is head-of-line waiting in the load generator.
e2e_window() {  # schedule, result prefix
  log "  fixed rate $rate/s for ${E2E_DUR}s, $1 schedule"
  "${LOADGEN[@]}" --port "$IP" --rate "$rate" --schedule "$1" --duration "$E2E_DUR" --warmup "$WARM" >"$WORK/$2.out" &
  LG=$!
  sleep "$WARM"
  receiver_reset "$PLAIN_STATS"; metrics "$MP" >"$WORK/$2.before"
  cpu_snapshot "$2" outboxd="$OUTBOXD_PID" loadgen="$LG" receiver="$PLAIN_PID"
  sleep "$(awk -v d="$E2E_DUR" 'BEGIN { print d - 0.5 }')"
  res "cpu_$2" "$(cpu_report "$2" outboxd="$OUTBOXD_PID" loadgen="$LG" receiver="$PLAIN_PID")"
  st=$(receiver_stats "$PLAIN_STATS"); metrics "$MP" >"$WORK/$2.after"
  wait "$LG"
  out=$(cat "$WORK/$2.out")
  log "  loadgen: $out"
  log "  receiver: $st"
  res "$2_accepted" "$(kv "$out" rate)"
  res "$2_delivered" "$(kv "$st" rate)"
  res "$2_ingress_p99" "$(kv "$out" p99_ms | xargs printf %.2f)"
  res "$2_age_p50" "$(kv "$st" age_p50_ms | xargs printf %.2f)"
  res "$2_age_p99" "$(kv "$st" age_p99_ms | xargs printf %.2f)"
  res "$2_age_p999" "$(kv "$st" age_p999_ms | xargs printf %.2f)"
  read -r h50 h99 < <(python3 "$BENCH_SRC/benchlib.py" hist "$WORK/$2.before" "$WORK/$2.after" outboxd_delivery_age_seconds 0.5 0.99)
  res "$2_hist_p50" "$h50"; res "$2_hist_p99" "$h99"
  wait_for 120 outbox_empty || log "  end-to-end backlog not drained after 120 s"
  settle
}
e2e_window shared e2e
e2e_window per-connection e2e_pc
stop_pid "$OUTBOXD_PID"
fi

# ------------------------------------------------------------------------------ 8 drain latency
# Issue 3's latency: enqueue → delivery at half of 20,000/s, without outboxd's ingress on the same
# CPUs. pgbench inserts 10 rows per statement at a fixed rate (open loop), through the table's
# NOTIFY trigger as product transactions do; each body carries the insert's clock_timestamp() as
# "bench_sent_us", so the receiver's age is commit + wake-up + claim + delivery.
if want drainlat; then
LAT_RATE=${BENCH_DRAIN_LATENCY_RATE:-10000}
log "8/8 drain latency: $LAT_RATE rows/s enqueued by SQL for ${E2E_DUR}s → outboxd --role drain"
q -c "TRUNCATE control_outbox" -c "VACUUM ANALYZE control_outbox" -c "CHECKPOINT" >/dev/null
cat >"$WORK/drainlat.sql" <<SQL
\set m random(0, $((MAILBOXES - 1)))
INSERT INTO control_outbox (region_name, mailbox_name, provider, integration_id, request_path, request_headers, request_body)
SELECT 'us', 'github:' || ((:m + g) % $MAILBOXES), 'github', (:m + g) % $MAILBOXES, '/extensions/github/webhook/',
       '$STORED_HEADERS'::jsonb,
       convert_to('{"bench_sent_us":' || (extract(epoch FROM clock_timestamp()) * 1000000)::bigint || ',"pad":"' || repeat('x', 1500) || '"}', 'UTF8')
FROM generate_series(1, 10) g;
SQL
IP=$(free_port); MP=$(free_port)
write_config "$WORK/drainlat.toml" "$IP" "$MP" "http://127.0.0.1:$PLAIN_PORT"
"$OUTBOXD" --config "$WORK/drainlat.toml" --role drain >>"$WORK/outboxd.log" 2>&1 &
OUTBOXD_PID=$!; BG_PIDS+=("$OUTBOXD_PID")
wait_for 10 curl -fs -o /dev/null "http://127.0.0.1:$MP/readyz" || true
pgbench -n -M prepared -c 8 -j 2 -R "$((LAT_RATE / 10))" -T "$((E2E_DUR + WARM))" -f "$WORK/drainlat.sql" bench >"$WORK/drainlat.out" 2>&1 &
PB=$!
sleep "$WARM"
receiver_reset "$PLAIN_STATS"
cpu_snapshot drainlat outboxd="$OUTBOXD_PID" pgbench="$PB" receiver="$PLAIN_PID"
sleep "$(awk -v d="$E2E_DUR" 'BEGIN { print d - 0.5 }')"
res cpu_drainlat "$(cpu_report drainlat outboxd="$OUTBOXD_PID" pgbench="$PB" receiver="$PLAIN_PID")"
st=$(receiver_stats "$PLAIN_STATS")
wait "$PB" || { cat "$WORK/drainlat.out" >&2; }
log "  pgbench: $(grep -E '^tps' "$WORK/drainlat.out" | head -1)"
log "  receiver: $st"
res drainlat_rate_target "$LAT_RATE"
res drainlat_delivered "$(kv "$st" rate)"
res drainlat_age_p50 "$(kv "$st" age_p50_ms | xargs printf %.2f)"
res drainlat_age_p99 "$(kv "$st" age_p99_ms | xargs printf %.2f)"
res drainlat_age_p999 "$(kv "$st" age_p999_ms | xargs printf %.2f)"
wait_for 120 outbox_empty || log "  drain-latency backlog not drained after 120 s"
stop_pid "$OUTBOXD_PID"
fi

res loadavg_end "$(cut -d' ' -f1-3 /proc/loadavg)"
if [ "$(stat -c %Y "$OUTBOXD")" != "$build_stamp" ]; then
  log "WARNING: $OUTBOXD was rebuilt during the run: later phases used a different binary"
  res rebuilt_during_run 1
fi
echo
python3 "$BENCH_SRC/benchlib.py" table "$RES" | tee "$WORK/table.md"
if [ -n "${BENCH_RESULTS_DIR:-}" ]; then
  mkdir -p "$BENCH_RESULTS_DIR"
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  cp "$RES" "$BENCH_RESULTS_DIR/bench-$mode-$stamp.env"
  cp "$WORK/table.md" "$BENCH_RESULTS_DIR/bench-$mode-$stamp.md"
  log "results: $BENCH_RESULTS_DIR/bench-$mode-$stamp.{md,env}"
fi
