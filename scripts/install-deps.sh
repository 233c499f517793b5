#!/usr/bin/env bash
# Installs the Debian 12 packages outboxd needs to build, run and test. Idempotent and quiet when
# everything is already there; run by `make`, `make run` and `make test`.
set -euo pipefail
pkgs=(build-essential cmake pkg-config ccache
      libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
      libpq-dev libssl-dev libtoml11-dev libcli11-dev libspdlog-dev libfmt-dev libsystemd-dev
      libcurl4-openssl-dev libgtest-dev libgmock-dev libbenchmark-dev
      postgresql postgresql-contrib postgresql-common prometheus python3 curl openssl systemd)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
