#!/usr/bin/env python3
"""Number crunching for the bench scripts (no third-party modules).

  benchlib.py hist BEFORE AFTER METRIC Q...   quantiles of a Prometheus histogram's increase
                                              between two /metrics snapshots, as bucket bounds
  benchlib.py ratio BEFORE AFTER SUM COUNT    (sum_after - sum_before) / (count_after - count_before)
  benchlib.py pgbench-log Q... < LOG          latency quantiles (ms) from pgbench -l logs
  benchlib.py table RESULTS                   the results table (markdown) from key=value lines
"""
import math
import re
import sys

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')


def parse_metrics(path):
    out = {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line.strip())
            if not m:
                continue
            name, labels, value = m.group(1), m.group(2) or '', m.group(3)
            try:
                out[(name, labels)] = float(value)
            except ValueError:
                pass
    return out


def metric_sum(metrics, name):
    return sum(v for (n, _), v in metrics.items() if n == name)


def hist(before, after, metric, qs):
    b, a = parse_metrics(before), parse_metrics(after)
    buckets = {}
    for (n, labels), v in a.items():
        if n != metric + '_bucket':
            continue
        le = re.search(r'le="([^"]+)"', labels).group(1)
        bound = math.inf if le == '+Inf' else float(le)
        buckets[bound] = buckets.get(bound, 0) + v - b.get((n, labels), 0)
    bounds = sorted(buckets)
    total = buckets.get(math.inf, 0)
    res = []
    for q in qs:
        if total <= 0:
            res.append('n/a')
            continue
        rank = q * total
        for bound in bounds:
            if buckets[bound] >= rank:
                res.append('>%gs' % bounds[-2] if bound == math.inf else '<=%gms' % (bound * 1000))
                break
    return res


def pgbench_quantiles(qs):
    lat = []
    for line in sys.stdin:
        parts = line.split()
        if len(parts) >= 3:
            lat.append(int(parts[2]))
    lat.sort()
    if not lat:
        return ['n/a' for _ in qs]
    return ['%.2f' % (lat[min(len(lat) - 1, int(q * (len(lat) - 1)))] / 1000.0) for q in qs]


def fmt_int(x):
    if x is None:
        return 'n/a'
    try:
        return '{:,}'.format(int(round(float(x))))
    except (TypeError, ValueError):
        return str(x)


def fmt_ratio(a, b):
    try:
        a, b = float(a), float(b)
        return '%.2f×' % (a / b) if b > 0 else 'n/a'
    except (TypeError, ValueError):
        return 'n/a'


def table(path):
    r = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip('\n')
            if '=' in line:
                k, v = line.split('=', 1)
                r[k] = v
    def g(k, d='n/a'):
        return r.get(k, d)
    mode = g('mode', '?')
    print('outboxd bench — %s run, %s, commit %s, build/outboxd built %s%s' % (
        mode, g('date', '?'), g('git', '?'), g('outboxd_built', '?'),
        ' (REBUILT DURING THE RUN: phases used different binaries)' if g('rebuilt_during_run') == '1' else ''))
    print('machine: %s CPUs (%s), %s RAM, %s; fsync=%s synchronous_commit=%s shared_buffers=%s' % (
        g('nproc'), g('cpu_model'), g('mem'), g('pg_version'), g('pg_fsync'), g('pg_sync_commit'), g('pg_shared_buffers')))
    print('disk: one-client single-row INSERT commits %s/s, p50 %s ms (the fsync latency bounds serial commits)' % (
        fmt_int(g('pgb_insert_1_tps')), g('pgb_insert_1_p50')))
    print('load average before the run: %s%s' % (g('loadavg_start'), '  (machine busy: figures are low bounds)' if g('busy') == '1' else ''))
    print()
    print('| measure | outboxd | limit / peer on the same machine |')
    print('|---|---|---|')
    print('| ingress: webhooks persisted/s (fsync on), %s keep-alive clients, p50/p99 | %s/s, p50 %s ms, p99 %s ms (%s webhooks per commit) | pgbench single-row INSERT, %s clients: %s tps, p50 %s ms, p99 %s ms → outboxd = %s (into control_outbox itself, triggers: %s: %s tps) |' % (
        g('clients'), fmt_int(g('ingress_rate')), g('ingress_p50'), g('ingress_p99'), g('ingress_batch'),
        g('clients'), fmt_int(g('pgb_insert_tps')), g('pgb_insert_p50'), g('pgb_insert_p99'),
        fmt_ratio(g('ingress_rate'), g('pgb_insert_tps')), g('pgb_outbox_triggers', '?'), fmt_int(g('pgb_insert_notify_tps'))))
    for n in g('sweep', '').split():
        if ('ingress_%s_rate' % n) not in r and ('pgb_insert_%s_tps' % n) not in r:
            continue
        print('| ingress with %s clients (shorter window) | %s/s, p50 %s ms, p99 %s ms (%s webhooks per commit) | pgbench single-row INSERT, %s clients: %s tps, p50 %s ms, p99 %s ms → outboxd = %s |' % (
            n, fmt_int(g('ingress_%s_rate' % n)), g('ingress_%s_p50' % n), g('ingress_%s_p99' % n), g('ingress_%s_batch' % n),
            n, fmt_int(g('pgb_insert_%s_tps' % n)), g('pgb_insert_%s_p50' % n), g('pgb_insert_%s_p99' % n),
            fmt_ratio(g('ingress_%s_rate' % n), g('pgb_insert_%s_tps' % n))))
    print('| drain: deliveries/s to a local keep-alive receiver, %s mailboxes, %s rows, daemon start until the outbox is empty | %s/s (first to last delivery: %s/s; %s connections opened) | pgbench claim+delete (SKIP LOCKED, %s rows/txn, %s clients): %s rows/s → outboxd = %s |' % (
        g('mailboxes'), fmt_int(g('rows')), fmt_int(g('drain_rate')), fmt_int(g('drain_window_rate')), g('drain_connections'), g('pgb_batch'), g('pgb_drain_clients'),
        fmt_int(g('pgb_drain_rate')), fmt_ratio(g('drain_rate'), g('pgb_drain_rate'))))
    print('| drain over TLS: https://localhost receiver, same rows | %s/s (first to last delivery: %s/s; %s of plain HTTP; %s TLS connections opened) | — |' % (
        fmt_int(g('tls_rate')), fmt_int(g('tls_window_rate')), fmt_ratio(g('tls_rate'), g('drain_rate')), g('tls_connections')))
    print('| end to end: ingress → region receiver at %s/s (half of the measured max %s/s), open loop over %s connections (any idle one takes the next due webhook), age p50/p99 | p50 %s ms, p99 %s ms, p99.9 %s ms (daemon histogram: p50 %s, p99 %s); ingress p99 %s ms | issue 3 target: p99 < 50 ms |' % (
        fmt_int(g('e2e_rate_target')), fmt_int(g('e2e_max')), g('clients'), g('e2e_age_p50'), g('e2e_age_p99'), g('e2e_age_p999'),
        g('e2e_hist_p50'), g('e2e_hist_p99'), g('e2e_ingress_p99')))
    if 'e2e_pc_age_p99' in r:
        print('| end to end, same rate, per-connection schedule (wrk2: a slow answer delays that connection\'s next requests) | p50 %s ms, p99 %s ms, p99.9 %s ms (daemon histogram: p50 %s, p99 %s); ingress p99 %s ms | — |' % (
            g('e2e_pc_age_p50'), g('e2e_pc_age_p99'), g('e2e_pc_age_p999'), g('e2e_pc_hist_p50'), g('e2e_pc_hist_p99'),
            g('e2e_pc_ingress_p99')))
    print('| drain latency: rows enqueued by SQL at %s/s (10 per statement, NOTIFY trigger), outboxd --role drain, age from insert to receiver | p50 %s ms, p99 %s ms, p99.9 %s ms (%s/s delivered) | issue 3 target: p99 < 50 ms at 10,000/s |' % (
        fmt_int(g('drainlat_rate_target')), g('drainlat_age_p50'), g('drainlat_age_p99'), g('drainlat_age_p999'),
        fmt_int(g('drainlat_delivered'))))
    gw = r.get('gw_rate')
    gw_cell = ('Graphile Worker %s, no-op task, %s queues, concurrency 24, localQueue.size 500, completeJobBatchDelay 0: %s jobs/s → outboxd = %s' % (
        g('gw_version', '0.17.3'), g('mailboxes'), fmt_int(gw), fmt_ratio(g('drain_rate'), gw))) if gw else (
        'Graphile Worker: not measured — %s' % g('gw_status', 'unknown'))
    print('| same job in Graphile Worker (same Postgres, %s jobs pre-inserted) | %s deliveries/s (plain HTTP drain above) | %s |' % (
        fmt_int(g('gw_jobs')), fmt_int(g('drain_rate')), gw_cell))
    print('| daemon RSS and CPU per 1,000 deliveries/s (plain drain run) | RSS peak %s MB; %s cores per 1,000 deliveries/s (CPU-seconds per 1,000 deliveries; %s cores on average while delivering) | |' % (
        g('drain_rss_mb'), g('drain_cpu_per_k'), g('drain_cpu_outboxd')))
    print()
    print('CPU split (cores busy on average; "other" = everything else on this shared machine):')
    for phase in ('ingress', 'pgb_insert', 'pgb_insert_notify', 'drain', 'tls', 'pgb_drain', 'e2e', 'e2e_pc', 'drainlat'):
        if g('cpu_' + phase):
            print('  %-17s %s' % (phase, g('cpu_' + phase)))
    print()
    print('settings: drain.concurrency=%s drain.batch_size=%s drain.rows_per_mailbox=%s database.pool_size=%s; loadgen %s threads; receiver %s threads; database settings: %s' % (
        g('drain_concurrency'), g('drain_batch'), g('rows_per_mailbox'), g('pool_size'), g('loadgen_threads'), g('receiver_threads'),
        g('db_settings', 'none')))
    print('server settings beyond fsync=on synchronous_commit=on max_connections=300: %s' % g('pg_options', 'none'))
    print('targets (issue 7 / issue 3):')

    def target(name, ok):
        print('  %-62s %s' % (name, 'n/a' if ok is None else ('MET' if ok else 'MISSED')))

    def num(k):
        try:
            return float(g(k))
        except (TypeError, ValueError):
            return None

    ing, dr, age99 = num('ingress_rate'), num('drain_rate'), num('e2e_age_p99')
    best = max([x for x in [num('ingress_%s_rate' % n) for n in g('sweep', '').split()] + [ing] if x is not None], default=None)
    target('ingress ≥ 25,000 webhooks/s (at %s clients; best of all client counts: %s/s)' % (g('clients'), fmt_int(best)),
           None if ing is None else ing >= 25000)
    target('ingress above the pgbench single-row commit figure', None if ing is None or num('pgb_insert_tps') is None else ing > num('pgb_insert_tps'))
    target('drain ≥ 20,000 deliveries/s', None if dr is None else dr >= 20000)
    target('drain ≥ 2× Graphile Worker', None if dr is None or num('gw_rate') is None else dr >= 2 * num('gw_rate'))
    target('end to end p99 < 50 ms at half of the measured max (issue 3 asks at 10,000/s)', None if age99 is None else age99 < 50)
    lat99, lat_rate = num('drainlat_age_p99'), num('drainlat_rate_target')
    target('enqueue → delivery p99 < 50 ms at 10,000/s (SQL enqueue, drain only)',
           None if lat99 is None or lat_rate is None or lat_rate < 10000 else lat99 < 50)
    if mode == 'quick':
        print('(quick run: short windows and small row counts — proves the scripts work; use a full run for figures)')


def main(argv):
    cmd = argv[1]
    if cmd == 'hist':
        print(' '.join(hist(argv[2], argv[3], argv[4], [float(q) for q in argv[5:]])))
    elif cmd == 'ratio':
        b, a = parse_metrics(argv[2]), parse_metrics(argv[3])
        s = metric_sum(a, argv[4]) - metric_sum(b, argv[4])
        c = metric_sum(a, argv[5]) - metric_sum(b, argv[5])
        print('%.1f' % (s / c) if c > 0 else 'n/a')
    elif cmd == 'sum':
        print('%.0f' % metric_sum(parse_metrics(argv[2]), argv[3]))
    elif cmd == 'pgbench-log':
        print(' '.join(pgbench_quantiles([float(q) for q in argv[2:]])))
    elif cmd == 'table':
        table(argv[2])
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main(sys.argv)
