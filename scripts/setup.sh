#!/usr/bin/env bash
# Installs everything microseg needs to build, test and run the demo
# (Debian 12 packages). Idempotent: does nothing when all are present.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config clang llvm bpftool linux-libc-dev
  libbpf-dev libelf-dev zlib1g-dev
  libcli11-dev libspdlog-dev libfmt-dev libyaml-dev libxxhash-dev nlohmann-json3-dev libgtest-dev
  iproute2 socat jq
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
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
