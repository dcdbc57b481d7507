#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang with ASan + UBSan, in
# build-fuzz/: never build/) and runs each for a while.
#
#   scripts/fuzz.sh [--time SECONDS] [--target NAME[,NAME...]] [--list]
#
# Each target runs --time seconds (default 60; metrics_http half of it: it
# goes over a loopback socket per input, so it costs far more per
# execution). It starts from its seed corpus (tests/fuzz/corpus/<target>,
# only read) and what earlier runs found (build-fuzz/corpus/<target>, kept).
# Prints per target: executions, exec/s, coverage (edges, features),
# findings. A finding (crash, failed property, sanitizer report, leak, timeout
# of 10 s on one input, more than 2 GB) is saved under
# build-fuzz/crashes/<target>/; the script then exits 1. Replay one with
# build-fuzz/<target>_fuzz build-fuzz/crashes/<target>/<file>.
set -euo pipefail
cd "$(dirname "$0")/.."

time_s=60
only=""
list=0
while (($#)); do
  case $1 in
    --time) time_s=$2; shift 2 ;;
    --target) only=$2; shift 2 ;;
    --list) list=1; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ $time_s =~ ^[0-9]+$ ]] || ((time_s < 1)); then
  echo "fuzz: --time wants a number of seconds >= 1, not '$time_s'" >&2
  exit 2
fi

# name dictionary (tests/fuzz/dict/)
TARGETS=(
  "policy_text policy"
  "policy_loader policy"
  "policy_reuse policy"
  "control_reply json"
  "config_file config"
  "metrics_http http"
  "metrics_text metrics"
  "text -"
  "cidr -"
  "cluster_records json"
  "dns_response -"
)
if ((list)); then
  for t in "${TARGETS[@]}"; do echo "${t%% *}"; done
  exit 0
fi
selected=()
for t in "${TARGETS[@]}"; do
  name=${t%% *}
  if [[ -z $only || ",$only," == *",$name,"* ]]; then selected+=("$t"); fi
done
if ((${#selected[@]} == 0)); then
  echo "fuzz: no target named '$only' (--list shows them)" >&2
  exit 2
fi

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found (scripts/setup.sh installs it)" >&2; exit 1; }
done
B=build-fuzz
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
build_start=$SECONDS
cmake -S tests/fuzz -B "$B" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  "${launcher[@]}" >"$B.configure.log" 2>&1 || { cat "$B.configure.log" >&2; exit 1; }
mv -f "$B.configure.log" "$B/configure.log"
build_targets=()
for t in "${selected[@]}"; do build_targets+=(--target "${t%% *}_fuzz"); done
cmake --build "$B" -j"$(nproc)" "${build_targets[@]}" >"$B/build.log" 2>&1 || { tail -50 "$B/build.log" >&2; exit 1; }
echo "fuzz: built ${#selected[@]} target(s) in $((SECONDS - build_start)) s ($B/)"

mkdir -p "$B/logs"
printf '%-16s %6s %12s %9s %7s %8s  %s\n' target time executions exec/s edges features findings
failed=0
for t in "${selected[@]}"; do
  name=${t%% *}
  dict=${t##* }
  secs=$time_s
  [[ $name == metrics_http ]] && secs=$(((time_s + 1) / 2))
  work="$B/corpus/$name"
  crashes="$B/crashes/$name"
  mkdir -p "$work" "$crashes"
  args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$crashes/")
  [[ $dict != - ]] && args+=(-dict="tests/fuzz/dict/$dict.dict")
  before=$(find "$crashes" -type f | wc -l)
  log="$B/logs/$name.log"
  rc=0
  "$B/${name}_fuzz" "${args[@]}" "$work" "tests/fuzz/corpus/$name" >"$log" 2>&1 || rc=$?
  after=$(find "$crashes" -type f | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  edges=$(awk '{print $2}' <<<"$cov")
  features=$(awk '{print $4}' <<<"$cov")
  findings=$((after - before))
  if ((rc != 0 && findings == 0)); then findings=1; fi  # stopped by something that left no input
  printf '%-16s %5ss %12s %9s %7s %8s  %s\n' "$name" "$secs" "${execs:-?}" "${rate:-?}" "${edges:-?}" \
    "${features:-?}" "$( ((findings)) && echo "$findings (exit $rc; $log, $crashes/)" || echo 0)"
  ((findings)) && failed=1
done
exit $failed
