#!/usr/bin/env bash
# Builds the provider-parser libFuzzer targets (clang, ASan) and runs each for a bounded time, so
# parser changes get a fuzzing pass without a harness. Usage:
#   tests/fuzz/run.sh [provider ...]        default: every provider
# Env: FUZZ_SECONDS (per target, default 20), FUZZ_BUILD_DIR (default build-fuzz at the repo root),
#      CXX (default clang++), FUZZ_JOBS (parallel compiles, default 2).
# New interesting inputs go to $FUZZ_BUILD_DIR/corpus/<provider>; the committed seeds in
# tests/fuzz/corpus/<provider> are only read. A crash leaves crash-* in $FUZZ_BUILD_DIR and exits non-zero.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
seconds="${FUZZ_SECONDS:-20}"
cxx="${CXX:-clang++}"
jobs="${FUZZ_JOBS:-2}"
all=(github gitlab slack jira jira_server msteams vsts bitbucket discord)
targets=("$@")
if [ "$#" -eq 0 ]; then targets=("${all[@]}"); fi

flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror -Wno-missing-field-initializers
       -I"$root/include" -I"$root/src/ingress/parsers" -I"$here")
libs=(-lboost_json -lssl -lcrypto -lspdlog -lfmt -lpthread)
# The router and resolver need Postgres and the outbox; parsers only need these.
sources=("$root"/src/ingress/crypto.cpp "$root"/src/ingress/decision.cpp "$root"/src/ingress/request.cpp
         "$root"/src/ingress/parsers/*.cpp "$root"/src/config/config.cpp)

mkdir -p "$out/obj"
objects=()
pids=()
for src in "${sources[@]}"; do
    obj="$out/obj/$(basename "${src%.cpp}").o"
    objects+=("$obj")
    if [ ! -e "$obj" ] || [ "$src" -nt "$obj" ] || [ -n "$(find "$root/include" "$root/src/ingress/parsers" -name '*.hpp' -newer "$obj" -print -quit)" ]; then
        "$cxx" "${flags[@]}" -fsanitize=fuzzer-no-link,address -c "$src" -o "$obj" &
        pids+=($!)
        if [ "${#pids[@]}" -ge "$jobs" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
    fi
done
for p in "${pids[@]}"; do wait "$p"; done

status=0
for t in "${targets[@]}"; do
    src="$here/${t}_fuzz.cpp"
    [ -f "$src" ] || { echo "run.sh: no target $t" >&2; exit 2; }
    bin="$out/${t}_fuzz"
    echo "== $t: build"
    "$cxx" "${flags[@]}" -fsanitize=fuzzer,address "$src" "${objects[@]}" "${libs[@]}" -o "$bin"
    mkdir -p "$out/corpus/$t"
    echo "== $t: fuzz ${seconds}s"
    if ! (cd "$out" && "$bin" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1 \
              "$out/corpus/$t" "$here/corpus/$t" > "$out/$t.log" 2>&1); then
        echo "== $t: FAILED (see $out/$t.log)" >&2
        tail -40 "$out/$t.log" >&2
        status=1
    else
        grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$out/$t.log" | tr '\n' ' '
        echo
    fi
done
exit $status
