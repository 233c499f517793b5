#!/usr/bin/env bash
# Builds the bench tools (loadgen, receiver) into build-bench/ with g++ directly: two files,
# header-only Boost.Asio/Beast plus OpenSSL, no CMake needed. Rebuilds only what changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/tests/bench"
out="${BENCH_BUILD_DIR:-$root/build-bench}"
mkdir -p "$out"
CXX=${CXX:-g++}
flags=(-std=c++20 -O2 -g -Wall -Wextra -Werror -Wno-mismatched-new-delete -DBOOST_ASIO_NO_DEPRECATED -pthread)
pids=()
for tool in loadgen receiver; do
  if [ ! -x "$out/$tool" ] || [ "$src/$tool.cpp" -nt "$out/$tool" ] || [ "$src/latency_histogram.hpp" -nt "$out/$tool" ] || [ "$src/http_text.hpp" -nt "$out/$tool" ]; then
    echo "bench: compiling $tool"
    "$CXX" "${flags[@]}" -o "$out/$tool" "$src/$tool.cpp" -lssl -lcrypto &
    pids+=($!)
  fi
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
exit $rc
