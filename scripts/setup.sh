#!/usr/bin/env bash
# Installs everything microseg needs to build, test and run the demo
# (Debian 12 packages). Idempotent: does nothing when all are present.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang llvm bpftool linux-libc-dev
  libclang-rt-14-dev  # libFuzzer and the sanitizers for clang (scripts/fuzz.sh)
  libbpf-dev libelf-dev zlib1g-dev
  libcli11-dev libspdlog-dev libfmt-dev libyaml-dev libxxhash-dev nlohmann-json3-dev libgtest-dev
  libcivetweb-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  etcd-server etcd-client
  iproute2 socat jq help2man dpkg-dev
  liburing-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing packages (${missing[*]}); run as root to install them" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# etcd-server's package would start a system etcd on :2379 where systemd
# runs: the tests start their own (loopback, free ports, temp dirs), so keep
# package installs from starting services, unless the machine already says
# how (an existing policy-rc.d is left alone).
blocker=""
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  blocker=/usr/sbin/policy-rc.d
fi
trap '[[ -n $blocker ]] && rm -f "$blocker"' EXIT
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
