#!/usr/bin/env bash
# Builds the Debian package: scripts/package.sh [--out DIR]
#   -> DIR/microseg_<version>_<arch>.deb (default DIR: dist/ of the
#   repository; a relative DIR is relative to the caller's directory)
# A Release build in build-release/ (warnings are not errors there: a
# packager's compiler may know warnings ours did not), then CPack.
set -euo pipefail
out=""
while (($#)); do
  case $1 in
    --out) [[ $# -ge 2 && -n $2 ]] || { echo "package: --out needs a directory" >&2; exit 2; }; out=$2; shift 2 ;;
    -h|--help) sed -n 2,6p "$0"; exit 0 ;;
    *) echo "package: unknown argument $1 (usage: scripts/package.sh [--out DIR])" >&2; exit 2 ;;
  esac
done
[[ -n $out ]] && out=$(realpath -m -- "$out")
cd "$(dirname "$0")/.."
[[ -n $out ]] || out=$PWD/dist
scripts/setup.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build-release -j"$(nproc)" --target microsegd microseg man_pages
mkdir -p "$out"
(cd build-release && cpack -G DEB -B "$out" >/dev/null)
rm -rf "$out/_CPack_Packages"
ls "$out"/microseg_*.deb
