// Peer benchmark: Graphile Worker 0.17.3 draining N pre-inserted no-op jobs spread over 1,000 named
// queues (queue_name gives per-queue ordering, as outboxd's mailboxes do), in the same PostgreSQL.
// Set-up from issue 7: concurrency 24, localQueue.size 500, completeJobBatchDelay 0.
//
//   GW_DATABASE_URL=postgres://… GW_JOBS=200000 GW_QUEUES=1000 GW_PAYLOAD_FILE=push.json node graphile_bench.mjs
//
// Jobs are inserted with graphile_worker.add_jobs() in bulk before the worker starts; the clock runs
// from run() to the moment the jobs table is empty. Prints one line of key=value.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import pg from "pg";
import { Logger, run, runMigrations } from "graphile-worker";

const connectionString = process.env.GW_DATABASE_URL;
const jobs = Number(process.env.GW_JOBS || 10000);
const queues = Number(process.env.GW_QUEUES || 1000);
const concurrency = Number(process.env.GW_CONCURRENCY || 24);
const localQueueSize = Number(process.env.GW_LOCAL_QUEUE || 500);
const payload = process.env.GW_PAYLOAD_FILE ? readFileSync(process.env.GW_PAYLOAD_FILE, "utf8") : "{}";
const timeoutMs = Number(process.env.GW_TIMEOUT_S || 600) * 1000;

// Warnings and errors only: per-job log lines would cost the peer time it does not spend in production.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`graphile: ${level}: ${message}`);
});

const preset = {
  worker: {
    connectionString,
    concurrentJobs: concurrency,
    maxPoolSize: concurrency + 2,
    pollInterval: 1000,
    localQueue: { size: localQueueSize },
    completeJobBatchDelay: 0,
  },
};

await runMigrations({ connectionString, logger });

const client = new pg.Client({ connectionString });
await client.connect();
const remaining = async () =>
  Number((await client.query("SELECT count(*) AS n FROM graphile_worker._private_jobs")).rows[0].n);

// Bulk insert in chunks (one add_jobs call each); queue k gets jobs k, k+1000, … in id order.
const chunk = 10000;
for (let lo = 0; lo < jobs; lo += chunk) {
  const hi = Math.min(jobs, lo + chunk) - 1;
  await client.query(
    `SELECT count(*) FROM graphile_worker.add_jobs(
       (SELECT array_agg(ROW('noop', $3::json, 'q' || (i % $4), NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec ORDER BY i)
        FROM generate_series($1::int, $2::int) AS i))`,
    [lo, hi, payload, queues],
  );
}
await client.query("VACUUM ANALYZE graphile_worker._private_jobs");
const queued = await remaining();
if (queued !== jobs) throw new Error(`expected ${jobs} jobs, found ${queued}`);

let executed = 0;
const t0 = performance.now();
const runner = await run({
  logger,
  noHandleSignals: true,
  preset,
  taskList: {
    noop: async () => {
      executed++;
    },
  },
});

// Done when every job ran and its completion is committed (the table is empty).
let left = jobs;
while (true) {
  await new Promise((r) => setTimeout(r, executed >= jobs ? 20 : 200));
  if (executed >= jobs) {
    left = await remaining();
    if (left === 0) break;
  }
  if (performance.now() - t0 > timeoutMs) {
    left = await remaining();
    break;
  }
}
const secs = (performance.now() - t0) / 1000;
await runner.stop();
await client.end();
const done = jobs - left;
console.log(
  `jobs=${jobs} done=${done} executed=${executed} seconds=${secs.toFixed(3)} rate=${(done / secs).toFixed(1)} ` +
    `queues=${queues} concurrency=${concurrency} local_queue=${localQueueSize} complete_batch_delay=0 ` +
    `version=${JSON.parse(readFileSync(new URL("./node_modules/graphile-worker/package.json", import.meta.url))).version}`,
);
process.exit(left === 0 ? 0 : 1);
