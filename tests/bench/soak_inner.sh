#!/usr/bin/env bash
# The soak proper; soak.sh starts it inside a throw-away PostgreSQL (pg_virtualenv, fsync on).
# outboxd --role all takes webhooks at half of its sustainable max (probed first, or SOAK_RATE) for
# SOAK_DURATION seconds, delivering to a keep-alive receiver, while another session holds a
# transaction with an xid open (BEGIN; SELECT txid_current(); sleep) for SOAK_PIN seconds, pinning
# the MVCC horizon as a long analytics query does: nothing deleted after it began can be vacuumed.
# Every SOAK_INTERVAL seconds one line: throughput in and out, backlog, n_dead_tup and
# pg_total_relation_size('control_outbox'), age of the oldest row, and how long the claim query
# running at that moment has been running (0 = none). Then two verdicts, PASS or FAIL:
#   backlog  — the daemon keeps up before the pin (≤ 5 s of load waiting), the backlog comes back
#              to its pre-pin level after the transaction ends (under load), and the outbox is
#              empty within 60 s of the load stopping;
#   size     — the table stops growing once the pin is gone: its size after (pin end + SOAK_SETTLE,
#              60 s) never exceeds 1.1 × the largest size seen up to then.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib.sh
source "$ROOT/tests/bench/lib.sh"
trap cleanup_bg EXIT

DURATION=${SOAK_DURATION:-600}
INTERVAL=${SOAK_INTERVAL:-30}
PIN=${SOAK_PIN:-$(( DURATION / 5 ))}                 # 2 of 10 minutes
PIN_START=${SOAK_PIN_START:-$(( DURATION * 3 / 10 ))} # minute 3
CLIENTS=${BENCH_CLIENTS:-64}
LG_THREADS=${BENCH_LOADGEN_THREADS:-2}
PROBE=${SOAK_PROBE:-15}
SETTLE=${SOAK_SETTLE:-60}  # time autovacuum gets after the pin before the size must stop growing
OUT="$WORK/soak.txt"

say() { echo "$*" | tee -a "$OUT"; }
log "soak: ${DURATION}s at half load, horizon pinned from ${PIN_START}s for ${PIN}s, a line every ${INTERVAL}s"
db_setup
start_receiver PLAIN
IP=$(free_port); MP=$(free_port)
write_config "$WORK/all.toml" "$IP" "$MP" "http://127.0.0.1:$PLAIN_PORT"
start_outboxd all "$WORK/all.toml" "$MP"
# An array, not a function: started with &, $! is then the load generator itself (its CPU is read).
LOADGEN=("$BENCH_BIN/loadgen" --port "$IP" --connections "$CLIENTS" --threads "$LG_THREADS" --secret "$GITHUB_SECRET"
         --installations "$MAILBOXES" --installation-base "$INSTALLATION_BASE")

if [ -n "${SOAK_RATE:-}" ]; then
  rate=$SOAK_RATE
  say "rate: $rate/s (SOAK_RATE)"
else
  "${LOADGEN[@]}" --duration "$PROBE" --warmup 1 >"$WORK/probe.out" &
  LG=$!
  sleep 1; c0=$(receiver_count "$PLAIN_STATS"); sleep "$PROBE"; c1=$(receiver_count "$PLAIN_STATS")
  wait "$LG"
  accepted=$(kv "$(cat "$WORK/probe.out")" rate)
  delivered=$(fdiv "$((c1 - c0))" "$PROBE")
  max=$(awk -v a="$accepted" -v d="$delivered" 'BEGIN { printf "%.0f", a < d ? a : d }')
  rate=$(( max / 2 ))
  say "probe (${PROBE}s, closed loop): accepted $accepted/s, delivered $delivered/s → sustainable max $max/s; soak at $rate/s"
  wait_for 300 outbox_empty || { say "probe backlog did not drain in 300 s"; exit 1; }
fi
q -c "VACUUM ANALYZE control_outbox" >/dev/null

say "machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), load average $(cut -d' ' -f1-3 /proc/loadavg); $(psql -X -A -t -d postgres -c 'SHOW server_version' | cut -d' ' -f1) fsync=$(psql -X -A -t -d postgres -c 'SHOW fsync')"
say "settings: rate $rate/s, $CLIENTS connections, $MAILBOXES mailboxes, duration ${DURATION}s, pin ${PIN_START}s..$((PIN_START + PIN))s, autovacuum_naptime=$(psql -X -A -t -d postgres -c 'SHOW autovacuum_naptime'), database settings: ${BENCH_DB_SETTINGS:-none}"
say ""
say "$(printf '%6s %-6s %12s %12s %9s %11s %11s %9s %9s' 't(s)' 'pin' 'accepted/s' 'delivered/s' 'backlog' 'n_dead_tup' 'size(MB)' 'oldest(s)' 'claim(s)')"

"${LOADGEN[@]}" --rate "$rate" --duration "$DURATION" --warmup 0 >"$WORK/soak-loadgen.out" &
LG=$!
t_start=$(now)
cpu_snapshot soak outboxd="$OUTBOXD_PID" loadgen="$LG" receiver="$PLAIN_PID"
(
  sleep "$PIN_START"
  psql -X -q -A -t -d bench -v ON_ERROR_STOP=1 >/dev/null <<SQL
BEGIN;
SELECT txid_current();
SELECT pg_sleep($PIN);
COMMIT;
SQL
) &
PINNER=$!
BG_PIDS+=("$PINNER")

metric_total() { metrics "$MP" | awk -v n="$1" 'index($0, n) == 1 { s += $NF } END { printf "%.0f\n", s }'; }
prev_in=$(metric_total outboxd_enqueued_total); prev_out=$(receiver_count "$PLAIN_STATS")
samples=()  # "t pin backlog size"
t=0; t_prev=$t_start
while [ "$t" -lt "$DURATION" ]; do
  sleep "$INTERVAL"
  t_now=$(now); dt=$(awk -v a="$t_prev" -v b="$t_now" 'BEGIN { print b - a }'); t_prev=$t_now
  t=$(awk -v a="$t_start" -v b="$t_now" 'BEGIN { printf "%.0f", b - a }')
  cur_in=$(metric_total outboxd_enqueued_total); cur_out=$(receiver_count "$PLAIN_STATS")
  read -r backlog dead size oldest claim < <(q -F' ' -c "SELECT (SELECT count(*) FROM control_outbox),
      (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'control_outbox'),
      pg_total_relation_size('control_outbox'),
      coalesce(round(extract(epoch FROM now() - (SELECT min(date_added) FROM control_outbox))::numeric, 1), 0),
      coalesce((SELECT round(max(extract(epoch FROM clock_timestamp() - query_start))::numeric, 2) FROM pg_stat_activity
                WHERE application_name = 'outboxd-claimer' AND state = 'active'), 0)")
  pin=no
  if [ "$t" -gt "$PIN_START" ] && [ "$t" -le $((PIN_START + PIN + 2)) ]; then pin=yes; fi
  say "$(printf '%6d %-6s %12.0f %12.0f %9d %11d %11.1f %9s %9s' "$t" "$pin" \
    "$(fdiv $((cur_in - prev_in)) "$dt" %.0f)" "$(fdiv $((cur_out - prev_out)) "$dt" %.0f)" \
    "$backlog" "$dead" "$(fdiv "$size" 1048576 %.1f)" "$oldest" "$claim")"
  samples+=("$t $pin $backlog $size")
  prev_in=$cur_in; prev_out=$cur_out
  # CPU over the run, read at the last sample before the load generator exits.
  if [ -z "${cpu:-}" ] && [ $(( t + INTERVAL )) -ge "$DURATION" ]; then
    cpu=$(cpu_report soak outboxd="$OUTBOXD_PID" loadgen="$LG" receiver="$PLAIN_PID")
  fi
done
[ -n "${cpu:-}" ] || cpu=$(cpu_report soak outboxd="$OUTBOXD_PID" loadgen="$LG" receiver="$PLAIN_PID")
wait "$LG" || true
lg=$(cat "$WORK/soak-loadgen.out")
t_stop=$(now)
if wait_for 60 outbox_empty; then
  drained=$(awk -v a="$t_stop" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'); empty=1
else
  drained=">60"; empty=0
fi
final_size=$(q -c "SELECT pg_total_relation_size('control_outbox')")
say ""
say "loadgen: $lg"
say "cpu (cores): $cpu"
say "after the load stopped: outbox empty in ${drained}s; table size $(fdiv "$final_size" 1048576 %.1f) MB"

# Verdicts.
pin_end=$(( PIN_START + PIN ))
base=0; last_pre=0; recovered=""; peak_before=0; peak_after=0; after_n=0
for s in "${samples[@]}"; do
  read -r st _ sb ss <<<"$s"
  if [ "$st" -le "$PIN_START" ]; then
    [ "$sb" -gt "$base" ] && base=$sb
    last_pre=$sb
  fi
  limit=$(( base * 2 > rate ? base * 2 : rate ))  # pre-pin level, or one second of load
  if [ "$st" -gt "$pin_end" ] && [ -z "$recovered" ] && [ "$sb" -le "$limit" ]; then recovered=$st; fi
  if [ "$st" -le $(( pin_end + SETTLE )) ]; then
    [ "$ss" -gt "$peak_before" ] && peak_before=$ss
  else
    after_n=$((after_n + 1)); [ "$ss" -gt "$peak_after" ] && peak_after=$ss
  fi
done
[ "$final_size" -gt "$peak_after" ] && peak_after=$final_size
# Before the pin the daemon must keep up: at most 5 seconds of load waiting at the last sample.
steady=1; [ "$last_pre" -le $(( rate * 5 )) ] || steady=0
if [ "$steady" = 0 ]; then
  say "FAIL backlog: the daemon did not keep up before the pin ($last_pre rows waiting at the last sample before ${PIN_START}s, more than 5 s of load)$([ -n "$recovered" ] && echo "; back to ≤ $limit rows at t=${recovered}s")$([ "$empty" = 1 ] && echo "; empty ${drained}s after the load stopped" || echo "; not empty 60 s after the load stopped")"
elif [ -n "$recovered" ] && [ "$empty" = 1 ]; then
  say "PASS backlog: back to the pre-pin level (≤ $limit rows) at t=${recovered}s, $(( recovered - pin_end ))s after the transaction ended; empty ${drained}s after the load stopped"
elif [ "$empty" = 1 ] && [ "$pin_end" -ge "$DURATION" ]; then
  say "PASS backlog: the pin lasted to the end of the load; empty ${drained}s after the load stopped"
else
  say "FAIL backlog: $([ -z "$recovered" ] && echo "not back to the pre-pin level (≤ $limit rows) while the load ran" || echo "recovered at t=${recovered}s")$([ "$empty" = 1 ] || echo "; outbox not empty 60 s after the load stopped")"
fi
if [ "$after_n" -eq 0 ]; then
  say "FAIL size: no sample later than ${SETTLE}s after the pin ended (make SOAK_DURATION longer): cannot tell"
elif awk -v a="$peak_after" -v b="$peak_before" 'BEGIN { exit !(a <= 1.1 * b) }'; then
  say "PASS size: largest after the pin $(fdiv "$peak_after" 1048576 %.1f) MB ≤ 1.1 × largest until then $(fdiv "$peak_before" 1048576 %.1f) MB"
else
  say "FAIL size: grew after the pin: $(fdiv "$peak_after" 1048576 %.1f) MB > 1.1 × $(fdiv "$peak_before" 1048576 %.1f) MB"
fi
stop_pid "$OUTBOXD_PID"
if [ -n "${BENCH_RESULTS_DIR:-}" ]; then
  mkdir -p "$BENCH_RESULTS_DIR"
  f="$BENCH_RESULTS_DIR/soak-$(date -u +%Y%m%dT%H%M%SZ).txt"
  cp "$OUT" "$f"; log "results: $f"
fi
grep -q '^FAIL' "$OUT" && exit 1 || exit 0
