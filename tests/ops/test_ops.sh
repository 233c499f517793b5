#!/usr/bin/env bash
# Checks the operations files: alert rules and their unit tests (promtool), the systemd unit
# (systemd-analyze verify), and that every config key is in ops/outboxd.toml.example and
# docs/config.md (our "optscan"). Run from anywhere: tests/ops/test_ops.sh
# Needs promtool (Debian package prometheus), systemd-analyze (systemd) and python3 (optional:
# the TOML parse check is skipped without tomllib). Optional argument: the build directory
# (default build), where outboxctl is looked for.
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root" || exit 1
outboxctl="${1:-build}/outboxctl"

example=ops/outboxd.toml.example
doc=docs/config.md
unit=ops/systemd/outboxd.service
rules=ops/prometheus/alerts.yml
rules_test=ops/prometheus/alerts_test.yml

passed=0
failed=0
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() {
    failed=$((failed + 1)); echo "FAIL $1"
    [ -s "$tmp/out" ] && sed 's/^/     /' "$tmp/out"
    return 0
}
# run NAME CMD...: passes when CMD exits 0; shows its output on failure.
run() {
    local name=$1; shift
    if "$@" >"$tmp/out" 2>&1; then pass "$name"; else fail "$name"; fi
}
have() { command -v "$1" >/dev/null 2>&1; }

# --- Prometheus rules -------------------------------------------------------------------------
if have promtool; then
    run "promtool check rules $rules" promtool check rules "$rules"
    run "promtool test rules $rules_test" promtool test rules "$rules_test"
else
    : >"$tmp/out"
    fail "promtool not found (apt-get install prometheus)"
fi

# --- systemd unit ------------------------------------------------------------------------------
# systemd-analyze verify fails on an ExecStart= binary that does not exist, and /usr/bin/outboxd
# is not installed on a build host. So we verify a copy in a temporary directory with the
# outboxd path replaced by /bin/true; every other line is the unit as shipped. verify exits 0 on
# many problems (unknown keys, unparsable values: "ignoring"), so any line that names our unit
# is a failure too. Lines about other units of the host (verify loads the units ours depends on)
# are shown but do not fail the test.
if have systemd-analyze; then
    mkdir -p "$tmp/unit"
    sed 's#/usr/bin/outboxd#/bin/true#g' "$unit" >"$tmp/unit/outboxd.service"
    if SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$tmp/unit/outboxd.service" >"$tmp/verify" 2>&1; then
        rc=0
    else
        rc=$?
    fi
    grep -F "outboxd.service" "$tmp/verify" >"$tmp/out" || true
    if [ "$rc" -eq 0 ] && [ ! -s "$tmp/out" ]; then
        pass "systemd-analyze verify $unit"
    else
        cp "$tmp/verify" "$tmp/out"
        fail "systemd-analyze verify $unit (exit $rc)"
    fi
    if grep -vF "outboxd.service" "$tmp/verify" | grep -q .; then
        echo "     note: systemd-analyze said about other units:"
        grep -vF "outboxd.service" "$tmp/verify" | sed 's/^/       /'
    fi
else
    : >"$tmp/out"
    fail "systemd-analyze not found (apt-get install systemd)"
fi

# The settings the daemon and the runbook rely on.
: >"$tmp/out"
for line in 'Type=notify' 'WatchdogSec=30s' \
    'ExecStartPre=/usr/bin/outboxd migrate --config /etc/outboxd/outboxd.toml' \
    'ExecStart=/usr/bin/outboxd --config /etc/outboxd/outboxd.toml' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'KillSignal=SIGTERM' 'TimeoutStopSec=30s' \
    'Restart=on-failure' 'DynamicUser=yes' 'ProtectSystem=strict' 'NoNewPrivileges=yes' \
    'CapabilityBoundingSet=' 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' \
    'SystemCallFilter=@system-service' 'ConfigurationDirectory=outboxd'; do
    grep -qxF "$line" "$unit" || echo "missing line: $line" >>"$tmp/out"
done
if [ -s "$tmp/out" ]; then fail "$unit has the required settings"; else pass "$unit has the required settings"; fi

# --- config keys ------------------------------------------------------------------------------
# The key table in src/config/ is the source of truth: `outboxctl config keys` prints it, one
# path per line (drain.batch_size, region[].url). Before outboxctl is built, this copy is used.
fallback_keys="database.url database.pool_size
ingress.listen ingress.max_body_bytes ingress.read_timeout ingress.tls_cert ingress.tls_key
metrics.listen
drain.concurrency drain.batch_size drain.rows_per_mailbox drain.request_timeout drain.lease
drain.poll_interval drain.claim_interval drain.shutdown_timeout drain.circuit_failures drain.circuit_open
drain.circuit_max_open
retry.base_delay retry.max_delay retry.max_attempts retry.max_age
provider.github.webhook_secret provider.slack.signing_secret provider.discord.public_key
tls.ca_file
apps.request_timeout apps.allow_private_urls apps.broken_timeout_threshold
smtp.url smtp.from
log.level log.format
region[].name region[].url region[].secret"
fallback_keys="$(tr ' ' '\n' <<<"$fallback_keys" | sed '/^$/d')"

key_re='^[a-z0-9_]+(\[\])?(\.[a-z0-9_]+)+$'
keys=""
source_of_keys="hard-coded list in $0"
# outboxctl may want --config even for this command: try without, then with the example.
outboxctl_keys() {
    [ -x "$outboxctl" ] || return 1
    { "$outboxctl" config keys || "$outboxctl" --config "$example" config keys; } >"$tmp/keys" 2>/dev/null \
        && [ -s "$tmp/keys" ] && ! grep -qvE "$key_re" "$tmp/keys"
}
if outboxctl_keys; then
    keys="$(cat "$tmp/keys")"
    source_of_keys="$outboxctl config keys"
    if [ "$(sort <<<"$keys")" != "$(sort <<<"$fallback_keys")" ]; then
        echo "     note: the hard-coded key list in $0 differs from outboxctl config keys; update it"
    fi
else
    keys="$fallback_keys"
fi
echo "     keys from: $source_of_keys ($(wc -l <<<"$keys") keys)"

# In the example, KEY must appear as `key =` (commented out or not) inside its own table:
# [a.b] for a.b.key, [[region]] for region[].key.
key_in_example() {
    local path=$1 table key header
    table=${path%.*}
    key=${path##*.}
    if [[ $table == *"[]" ]]; then header="[[${table%\[\]}]]"; else header="[$table]"; fi
    awk -v header="$header" -v key="$key" '
        /^[[:space:]]*\[/ { line = $0; sub(/[[:space:]]*(#.*)?$/, "", line); sub(/^[[:space:]]*/, "", line)
                            inside = (line == header); next }
        inside {
            line = $0; sub(/^[[:space:]]*#?[[:space:]]*/, "", line)
            if (index(line, key) == 1 && substr(line, length(key) + 1) ~ /^[[:space:]]*=/) { found = 1; exit }
        }
        END { exit found ? 0 : 1 }' "$example"
}

: >"$tmp/out"
while read -r k; do
    key_in_example "$k" || echo "not in $example: $k" >>"$tmp/out"
done <<<"$keys"
if [ -s "$tmp/out" ]; then fail "every key is in $example"; else pass "every key is in $example"; fi

: >"$tmp/out"
while read -r k; do
    grep -qF "\`$k\`" "$doc" || echo "not in $doc: \`$k\`" >>"$tmp/out"
done <<<"$keys"
if [ -s "$tmp/out" ]; then fail "every key is in $doc"; else pass "every key is in $doc"; fi

# The example must be valid TOML and hold no key the daemon would reject as unknown.
if have python3 && python3 -c 'import tomllib' 2>/dev/null; then
    run "$example is valid TOML with no unknown keys" python3 - "$example" "$keys" <<'EOF'
import sys, tomllib
path, keys = sys.argv[1], set(sys.argv[2].split())
with open(path, "rb") as f:
    data = tomllib.load(f)
def walk(table, prefix):
    for k, v in table.items():
        p = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict):
            yield from walk(v, p)
        elif isinstance(v, list) and v and all(isinstance(i, dict) for i in v):
            for item in v:
                yield from walk(item, p + "[]")
        else:
            yield p
unknown = sorted(set(walk(data, "")) - keys)
for p in unknown:
    print(f"unknown key in {path}: {p}")
sys.exit(1 if unknown else 0)
EOF
else
    echo "SKIP TOML parse check (python3 with tomllib not available)"
fi

# With the real binary, the example must load with the daemon's own parser.
if [ "$source_of_keys" = "$outboxctl config keys" ]; then
    run "outboxctl --config $example config show" "$outboxctl" --config "$example" config show
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
