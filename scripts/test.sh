#!/usr/bin/env bash
# The test command: installs dependencies, builds, and runs every test —
# unit tests (no privileges) and the end-to-end tests against the real kernel
# (root: they create throwaway cgroups and attach BPF programs there only).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMICROSEG_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"

if [[ $(id -u) -ne 0 ]]; then
  echo "test: the e2e tests need root (real BPF programs on throwaway cgroups)" >&2
  exit 1
fi
# Unit tests run in parallel; e2e tests are RUN_SERIAL (they share the kernel).
ctest --test-dir build --output-on-failure -j"$(nproc)" "$@"
scripts/fuzz.sh --time 10  # each fuzz target briefly (README "Fuzzing"); exits 1 on any finding
