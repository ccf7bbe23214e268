#!/bin/sh
# Installs everything berth needs on Debian 12 (as root) and builds it:
# the OCI runtimes, CNI plugins, the tools the test suite uses (clang's
# libFuzzer runtime, libclang-rt-14-dev, for the shim's fuzz test), and the npm
# dependencies. Safe to run again: it only asks apt for what is missing.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="runc crun containernetworking-plugins iproute2 iptables util-linux mount \
  attr zstd busybox-static docker-registry skopeo prometheus curl jq tinyproxy python3 systemd-container \
  openssl gcc g++ clang libclang-rt-14-dev make"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "install-deps: installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  # shellcheck disable=SC2086
  apt-get install -y --no-install-recommends $missing
fi
# The registry, prometheus and tinyproxy packages start services on systems with an init;
# berth's tests run their own instances.
if ! command -v node >/dev/null 2>&1; then
  echo "install-deps: Node.js 20 is required" >&2
  exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
make build
