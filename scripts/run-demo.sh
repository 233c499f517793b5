#!/usr/bin/env bash
# `make run`: a local PostgreSQL under ./.run/, the schema, a demo GitHub integration whose
# organizations live in two regions, two demo region receivers, and outboxd. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
run="$root/.run"
mkdir -p "$run"
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
port=${OUTBOXD_DEMO_PGPORT:-54329}
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  # PostgreSQL refuses to run as root: run it as the postgres user the package created.
  as_pg=(runuser -u postgres --)
  chmod o+x "$root" "$run" 2>/dev/null || true
fi
if [ ! -f "$run/pgdata/PG_VERSION" ]; then
  echo "== initdb $run/pgdata"
  mkdir -p "$run/pgdata"
  [ ${#as_pg[@]} -gt 0 ] && chown postgres "$run/pgdata" "$run"
  "${as_pg[@]}" "$pgbin/initdb" -D "$run/pgdata" -U postgres --auth=trust >/dev/null
fi
pids=()
cleanup() {
  echo; echo "== stopping"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "${as_pg[@]}" "$pgbin/pg_ctl" -D "$run/pgdata" -m fast stop >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM
# autovacuum_naptime as ops/RUNBOOK.md advises for a database that carries an outbox.
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$run/pgdata" -l "$run/postgres.log" -w \
  -o "-p $port -k $run -c listen_addresses=127.0.0.1 -c autovacuum_naptime=10s" start >/dev/null
url="postgresql://postgres@127.0.0.1:$port/outboxd"
psql -X -q -h 127.0.0.1 -p "$port" -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='outboxd'" | grep -q 1 \
  || psql -X -q -h 127.0.0.1 -p "$port" -U postgres -c "CREATE DATABASE outboxd"

cat > "$run/outboxd.toml" <<TOML
[database]
url = "$url"

[ingress]
listen = "127.0.0.1:8080"

[metrics]
listen = "127.0.0.1:9464"

[retry]
base_delay = "1s"
max_delay = "1m"

[[region]]
name = "us"
url = "http://127.0.0.1:9001"
secret = "region-us-secret"

[[region]]
name = "eu"
url = "http://127.0.0.1:9002"
secret = "region-eu-secret"
TOML

build/outboxd migrate --config "$run/outboxd.toml"
psql -X -q -h 127.0.0.1 -p "$port" -U postgres -d outboxd <<'SQL'
INSERT INTO integration (id, provider, external_id, name, status) VALUES (1, 'github', '42', 'demo-github', 'active')
  ON CONFLICT DO NOTHING;
INSERT INTO organization_mapping (organization_id, slug, region_name) VALUES (1, 'acme-us', 'us'), (2, 'acme-eu', 'eu')
  ON CONFLICT DO NOTHING;
INSERT INTO organization_integration (organization_id, integration_id, status) VALUES (1, 1, 'active'), (2, 1, 'active')
  ON CONFLICT DO NOTHING;
SQL

python3 scripts/demo_receiver.py us 9001 region-us-secret & pids+=($!)
python3 scripts/demo_receiver.py eu 9002 region-eu-secret & pids+=($!)
build/outboxd --config "$run/outboxd.toml" & pids+=($!)
for _ in $(seq 50); do curl -sf http://127.0.0.1:9464/readyz >/dev/null && break; sleep 0.2; done

cat <<MSG

outboxd is running (ingress 127.0.0.1:8080, metrics 127.0.0.1:9464, database $url).
Send a GitHub webhook; both region receivers print it:

  curl -i -X POST http://127.0.0.1:8080/extensions/github/webhook/ \\
       -H 'X-GitHub-Event: issues' -H 'Content-Type: application/json' \\
       -d '{"action":"opened","installation":{"id":42},"issue":{"id":1}}'

Then: build/outboxctl --config $run/outboxd.toml status     (backlog, dead letters, pauses)
      curl -s http://127.0.0.1:9464/metrics | grep outboxd_deliveries_total
Ctrl-C stops everything.
MSG
wait "${pids[2]}"
