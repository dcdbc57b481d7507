#!/usr/bin/env bash
# microseg benchmarks: what the datapath costs per hook and per connection,
# compared with an empty BPF program and with nftables, how fast policy is
# compiled and applied, and whether the event path keeps up and counts losses.
#
#   scripts/bench.sh [--quick] [--hooks-only | --fqdn-only | --no-cluster | --cluster-only | --wire-only] [--json FILE]
#
#   --quick      smoke run (about a minute here, plus the build if sources changed): fewer
#                configurations, rounds, iterations
#   --hooks-only only section 1 (per-hook cost; 1d: the observed-edge update,
#                monitor vs enforce; 1e: connection ages; 1f: FQDN peers), for iterating on the datapath
#   --fqdn-only  only section 1f (FQDN peers: DNS answers at ingress, connect4 to a
#                remote address; scripts/bench/fqdn.sh), for iterating on it
#   --no-cluster skip sections 5 and 6 (cluster mode; they need /usr/bin/etcd)
#   --cluster-only only section 5, for iterating on cluster mode
#   --wire-only  only section 6 (wire identity), for iterating on it
#   --json FILE  also write every figure as JSON (default: build-bench/bench.json)
#
# Run as root on a machine with cgroup v2 and BPF (>= 5.8). It builds what it
# needs (build-bench/), installs nftables if missing, then:
#   1. per-hook cost from the kernel's accounting (BPF_ENABLE_STATS: run_time_ns
#      / run_cnt per program) of the real microsegd at several policy sizes, in
#      enforce and monitor mode, next to empty programs on the same hooks and
#      three anchors on connect4 (a two-lookup allow-list check; the kernel's
#      socket lookup alone; one socket-storage create, what signing would add if it marked sockets);
#   2. connection path: loopback TCP connect+accept+close and UDP sendto loops
#      with no program / microseg / nftables (linear rules, verdict map),
#      interleaved over rounds, as ratios to no program;
#   3. control plane: parse / compile / apply times, a one-rule change, RSS;
#   4. event path: an audited connect flood in monitor mode;
#   5. cluster mode: microsegd (node A) and a fake node B (the real cluster
#      agent in microseg-bench-cluster) through an etcd of the bench's own,
#      B with 10k other endpoints: connect4's cost to B's listener next to a
#      local one, how long an address appearing on B takes to reach A's
#      kernel, and what one such change costs A (target ~10 ms);
#   6. wire identity: two real microsegd nodes (A here, B in a netns of its
#      own, each with its own cgroup subtree and state dir) through a fresh
#      etcd; a TCP connect+accept+close loop from A's workload to B's, with
#      both nodes signing (as their daemons set it up) and not (key id 0 and
#      the sockops sender detached on both, as a node that does not sign:
#      the datapath without the feature), interleaved: per-program ns of A's
#      connect4/sockops/ingress and B's ingress/sockops, the sum ON / OFF
#      (target <= 1.5x), wall time; and the same from an unmanaged process and a UDP
#      loop (the "zero cost" claims), checked with both daemons' counters.
#
# Safety: programs are attached only to cgroups this script creates under
# <cgroup2 mount>/microseg-bench-<pid>; BPF state is pinned only under
# /sys/fs/bpf/microseg-bench-<pid>; nftables rules live in the table
# microseg_bench_<pid> and only ever match this script's cgroup; traffic goes to
# 127.0.0.1 / ::1 only, but for section 5's connects to B's listener in the
# netns microseg-bench-<pid> (a veth in 198.18.0.0/15, the benchmarking
# range) and section 6's to node B in the netns microseg-bench-<pid>-w (the
# same range); section 1f's DNS responder is on 127.0.0.1:53 and 127.0.0.2:53
# if UDP port 53 is free here, else in the netns microseg-bench-<pid> (a
# veth in 198.19.0.0/16, removed before section 5 makes its own), where its
# connect target listens too; section 5's etcd listens on 127.0.0.1, section 6's also on
# A's end of its veth (B's daemon reaches it from its netns), data in the
# temp dir. Section 6's node B has the cgroup subtree <bench>/msb and the
# state dir /sys/fs/bpf/microseg-bench-<pid>-b. Everything is removed on exit, also on failure or Ctrl-C.
# Kernel statistics are enabled through a BPF_ENABLE_STATS fd held by the
# measuring tool (the kernel turns them off when it closes); the sysctl
# kernel.bpf_stats_enabled is checked and restored anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

QUICK=0
HOOKS_ONLY=0
FQDN_ONLY=0
NO_CLUSTER=0
CLUSTER_ONLY=0
WIRE_ONLY=0
JSON_OUT=""
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --hooks-only) HOOKS_ONLY=1 ;;
    --fqdn-only) FQDN_ONLY=1 ;;
    --no-cluster) NO_CLUSTER=1 ;;
    --cluster-only) CLUSTER_ONLY=1 ;;
    --wire-only) WIRE_ONLY=1 ;;
    --json) shift; JSON_OUT="${1:?--json needs a file}" ;;
    --json=*) JSON_OUT="${1#--json=}" ;;
    -h|--help) sed -n '2,/^set -euo/{/^#/p}' "$0"; exit 0 ;;
    *) echo "bench: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done
if ((HOOKS_ONLY + FQDN_ONLY + CLUSTER_ONLY + WIRE_ONLY > 1 || (NO_CLUSTER && (CLUSTER_ONLY || WIRE_ONLY)))); then
  echo "bench: --hooks-only, --fqdn-only, --cluster-only and --wire-only exclude each other, and --no-cluster the last two" >&2; exit 2
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "bench: run as root (it loads BPF programs into its own throwaway cgroups)" >&2
  exit 1
fi
STARTED=$(date +%s)
BUILD="$REPO/build-bench"
[[ -n "$JSON_OUT" ]] || JSON_OUT="$BUILD/bench.json"
[[ "$JSON_OUT" == /* ]] || JSON_OUT="$PWD/$JSON_OUT"

say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
note() { printf '   %s\n' "$*" >&2; }

# ---- build ---------------------------------------------------------------------
say "Dependencies and build ($BUILD)"
scripts/setup.sh >&2
for p in nftables; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    note "installing $p"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" >&2
  fi
done
cmake -S "$REPO" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
CLUSTER_TARGET=""; ((NO_CLUSTER || HOOKS_ONLY || FQDN_ONLY)) || CLUSTER_TARGET="microseg-bench-cluster microseg-bench-wire"
make -C "$BUILD" -j"$(nproc)" --no-print-directory microsegd microseg microseg-bench $CLUSTER_TARGET >/dev/null
MSD="$BUILD/microsegd"
MSC="$BUILD/microseg"
TOOL="$BUILD/microseg-bench"
CTOOL="$BUILD/microseg-bench-cluster"
WTOOL="$BUILD/microseg-bench-wire"

# ---- throwaway state -----------------------------------------------------------
CG2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
[[ -n "$CG2" ]] || { echo "bench: no cgroup2 mount in /proc/mounts" >&2; exit 1; }
BENCH="$CG2/microseg-bench-$$"
MSROOT="$BENCH/ms"          # microsegd's --cgroup-root
STATE=/sys/fs/bpf/microseg-bench-$$
CPSTATE=/sys/fs/bpf/microseg-bench-$$-cp
WORK=$(mktemp -d /tmp/microseg-bench.XXXXXX)
SOCK="$WORK/microseg.sock"
FLOWS="$WORK/flows.jsonl"
DLOG="$WORK/microsegd.log"
RAW="$WORK/raw.jsonl"
NFT_TABLE="microseg_bench_$$"
STATS_BEFORE=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo "")
DAEMON_PID=""
TOOL_PID=""
ETCD_PID=""
NETNS="microseg-bench-$$"
VETH="msb$$"              # msb<pid>a here, msb<pid>b in $NETNS
# Section 6: node B's daemon, netns, veth (msw<pid>a here, msw<pid>b there), state.
B_PID=""
WNETNS="microseg-bench-$$-w"
WVETH="msw$$"
BSTATE=/sys/fs/bpf/microseg-bench-$$-b
BSOCK="$WORK/microseg-b.sock"
export MICROSEG_SOCKET="$SOCK"
# Loopback ports of the benchmark flows: allowed (PA) and default-deny (PD).
PA=$((40000 + ($$ % 4900) * 2))
PD=$((PA + 1))

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  if [[ -n "$TOOL_PID" ]] && kill -0 "$TOOL_PID" 2>/dev/null; then
    kill "$TOOL_PID" 2>/dev/null; wait "$TOOL_PID" 2>/dev/null
  fi
  if [[ -n "$DAEMON_PID" ]] && kill -0 "$DAEMON_PID" 2>/dev/null; then
    # SIGTERM alone leaves pinned programs enforcing (by design): uninstall.
    "$MSC" uninstall >/dev/null 2>&1 || kill -TERM "$DAEMON_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
  [[ -x "$MSD" ]] && "$MSD" --cleanup --state-dir "$STATE" >/dev/null 2>&1
  if [[ -n "$B_PID" ]] && kill -0 "$B_PID" 2>/dev/null; then
    MICROSEG_SOCKET="$BSOCK" "$MSC" uninstall >/dev/null 2>&1 || kill -TERM "$B_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$B_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$B_PID" 2>/dev/null
    wait "$B_PID" 2>/dev/null
  fi
  [[ -x "$MSD" && -e "$BSTATE" ]] && "$MSD" --cleanup --state-dir "$BSTATE" >/dev/null 2>&1
  if [[ -n "$ETCD_PID" ]] && kill -0 "$ETCD_PID" 2>/dev/null; then
    kill -TERM "$ETCD_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$ETCD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$ETCD_PID" 2>/dev/null
    wait "$ETCD_PID" 2>/dev/null
  fi
  if [[ -e "/run/netns/$NETNS" ]]; then
    # Only processes in our own netns (the tool's listener dies with it anyway).
    for p in $(ip netns pids "$NETNS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$NETNS" 2>/dev/null
  fi
  if [[ -e "/run/netns/$WNETNS" ]]; then
    for p in $(ip netns pids "$WNETNS" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
    ip netns del "$WNETNS" 2>/dev/null
  fi
  ip link del "${VETH}a" 2>/dev/null
  ip link del "${WVETH}a" 2>/dev/null
  rm -rf "$STATE" "$CPSTATE" "$BSTATE" 2>/dev/null
  nft delete table inet "$NFT_TABLE" 2>/dev/null
  if [[ -d "$BENCH" ]]; then
    # Only our own tree: cgroup.kill ends any loop child left behind.
    echo 1 >"$BENCH/cgroup.kill" 2>/dev/null
    for _ in $(seq 50); do
      find "$BENCH" -depth -type d -exec rmdir {} \; 2>/dev/null
      [[ -d "$BENCH" ]] || break
      sleep 0.1
    done
  fi
  if [[ -n "$STATS_BEFORE" && "$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null)" != "$STATS_BEFORE" ]]; then
    sysctl -qw kernel.bpf_stats_enabled="$STATS_BEFORE"
  fi
  if ((rc != 0)) && [[ -f "$DLOG" ]]; then
    echo "bench: failed (rc $rc); last daemon log lines:" >&2
    tail -n 15 "$DLOG" >&2
  fi
  if ((rc != 0)) && [[ -f "$WORK/microsegd-b.log" ]]; then
    echo "bench: last lines of node B's daemon log (section 6):" >&2
    tail -n 15 "$WORK/microsegd-b.log" >&2
  fi
  rm -rf "$WORK"
  local left=""
  [[ -d "$BENCH" ]] && left+=" cgroup $BENCH"
  [[ -e "$STATE" || -e "$CPSTATE" || -e "$BSTATE" ]] && left+=" pins"
  [[ -n "$B_PID" ]] && kill -0 "$B_PID" 2>/dev/null && left+=" node B microsegd (pid $B_PID)"
  [[ -e "/run/netns/$WNETNS" ]] && left+=" netns $WNETNS"
  ip link show "${WVETH}a" >/dev/null 2>&1 && left+=" veth ${WVETH}a"
  [[ -n "$ETCD_PID" ]] && kill -0 "$ETCD_PID" 2>/dev/null && left+=" etcd (pid $ETCD_PID)"
  [[ -e "/run/netns/$NETNS" ]] && left+=" netns $NETNS"
  ip link show "${VETH}a" >/dev/null 2>&1 && left+=" veth ${VETH}a"
  nft list table inet "$NFT_TABLE" >/dev/null 2>&1 && left+=" nft table"
  if [[ -n "$left" ]]; then echo "bench: cleanup INCOMPLETE:$left" >&2; else echo "bench: cleaned up (cgroups, BPF pins, nft table, etcd, netns, processes, temp files)" >&2; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$MSROOT/w0" "$BENCH/plain" "$BENCH/floor" "$BENCH/nft"

# ---- sizes ----------------------------------------------------------------------
if ((QUICK)); then
  HOOK_CONFIGS=("10 10" "1000 1000" "100000 10")
  HOOK_ITERS=2000; HOOK_REPS=3; FLAT_ROUNDS=2
  PATH_ROUNDS=3; PATH_ITERS=20000; PATH_SECONDS=0.7
  CP_COMBOS="1000:1000,10000:1000,100000:10"
  FLOOD_SECONDS=3
  CL_ADDRS=1000; CL_LISTENERS=1000; CL_CHANGES=20; CL_ROUNDS=2; CL_ITERS=5000
  W_ROUNDS=4; W_ITERS=5000; W_UDP_ITERS=20000
else
  HOOK_CONFIGS=("10 10" "1000 10" "100000 10" "10 1000" "1000 1000" "100000 1000" "10 10000" "1000 10000")
  HOOK_ITERS=5000; HOOK_REPS=3; FLAT_ROUNDS=4
  PATH_ROUNDS=7; PATH_ITERS=100000; PATH_SECONDS=1.5
  CP_COMBOS="1000:1000,10000:1000,100000:1000,1000:10000,10000:10000,100000:10000"
  FLOOD_SECONDS=8
  CL_ADDRS=5000; CL_LISTENERS=5000; CL_CHANGES=50; CL_ROUNDS=5; CL_ITERS=20000
  W_ROUNDS=8; W_ITERS=20000; W_UDP_ITERS=50000
fi
# BENCH_CLUSTER_ADDRS / BENCH_CLUSTER_LISTENERS / BENCH_CLUSTER_CHANGES override section 5's sizes.
CL_ADDRS=${BENCH_CLUSTER_ADDRS:-$CL_ADDRS}
CL_LISTENERS=${BENCH_CLUSTER_LISTENERS:-$CL_LISTENERS}
CL_CHANGES=${BENCH_CLUSTER_CHANGES:-$CL_CHANGES}
PATH_CONFIG="1000 1000"
# BENCH_HOOK_CONFIGS="10 10;100000 10" overrides the per-hook configurations.
if [[ -n "${BENCH_HOOK_CONFIGS:-}" ]]; then IFS=';' read -ra HOOK_CONFIGS <<<"$BENCH_HOOK_CONFIGS"; fi

raw() { echo "$1" >>"$RAW"; }
jqr() { jq -c "$@"; }

run_tool() {  # run the tool in the background so Ctrl-C cleanup can stop it
  "$TOOL" "$@" &
  TOOL_PID=$!
  wait "$TOOL_PID"
  TOOL_PID=""
}

# The kernel's speculation mitigations set what a helper call costs (every
# BPF helper and kernel function returns through them): AMD's SRSO "Safe
# RET" makes each return costly, so programs that call more helpers pay
# more than the empty floor suggests. Reported with the figures.
mitigations() {
  local v=/sys/devices/system/cpu/vulnerabilities out="" f
  for f in spec_rstack_overflow retbleed spectre_v2; do
    [[ -r $v/$f ]] && out+="${out:+; }$f: $(cut -c1-60 <"$v/$f")"
  done
  echo "${out:-unknown}"
}
MITIGATIONS=$(mitigations)
raw "$(jq -nc --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg kernel "$(uname -r)" \
  --arg cpus "$(nproc)" --arg model "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
  --arg mitigations "$MITIGATIONS" \
  --argjson quick "$QUICK" '{section:"meta", date:$date, kernel:$kernel, cpus:($cpus|tonumber), cpu_model:$model, mitigations:$mitigations, quick:($quick==1)}')"

# ---- 5. cluster (a function: run after section 3, or alone with --cluster-only) ----
# Node A is microsegd (its own run, in cluster mode, on this script's cgroup
# root and state dir again); node B is microseg-bench-cluster, the real
# cluster agent publishing one host address (B's end of a veth into the
# netns $NETNS, with a real listener there) and CL_ADDRS workload addresses
# + CL_LISTENERS listeners more (198.19.0.0/16: map entries, never routed).
cluster_section() {
  say "5. Cluster: node A (microsegd) and a fake node B with $CL_ADDRS addresses + $CL_LISTENERS listeners, through etcd"
  [[ -x /usr/bin/etcd ]] || { echo "bench: /usr/bin/etcd missing (scripts/setup.sh installs etcd-server); --no-cluster skips section 5" >&2; exit 1; }
  CL="$WORK/cluster"
  mkdir -p "$CL/policy"
  port_free() { ! ss -Htln "sport = :$1" | grep -q .; }
  EC="" EP=""
  for ((k = 0; k < 50; k++)); do
    c=$((20000 + (($$ + k * 7919) % 9000) * 2))
    if port_free "$c" && port_free $((c + 1)); then EC=$c EP=$((c + 1)); break; fi
  done
  [[ -n "$EC" ]] || { echo "bench: no two free loopback ports for etcd" >&2; exit 1; }
  ETCD_URL="http://127.0.0.1:$EC"
  /usr/bin/etcd --name bench --data-dir "$CL/etcd" --listen-client-urls "$ETCD_URL" --advertise-client-urls "$ETCD_URL" \
    --listen-peer-urls "http://127.0.0.1:$EP" --initial-advertise-peer-urls "http://127.0.0.1:$EP" \
    --initial-cluster "bench=http://127.0.0.1:$EP" --initial-cluster-state new --initial-cluster-token "microseg-bench-$$" \
    --log-level warn --logger zap >"$CL/etcd.log" 2>&1 &
  ETCD_PID=$!
  for _ in $(seq 100); do
    curl -sf "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"' && break
    kill -0 "$ETCD_PID" 2>/dev/null || { echo "bench: etcd exited:" >&2; tail -5 "$CL/etcd.log" >&2; exit 1; }
    sleep 0.1
  done
  curl -sf "$ETCD_URL/health" >/dev/null || { echo "bench: etcd not healthy after 10 s" >&2; exit 1; }
  note "etcd $(/usr/bin/etcd --version | head -1 | awk '{print $3}') on $ETCD_URL (pid $ETCD_PID, data in the temp dir)"

  # A /30 of 198.18.0.0/15 per pid: A's end .1, B's end .2 in $NETNS.
  NET4="198.18.$((($$ / 64) % 256)).$((($$ % 64) * 4))"
  A_ADDR="${NET4%.*}.$((${NET4##*.} + 1))"
  B_ADDR="${NET4%.*}.$((${NET4##*.} + 2))"
  ip netns add "$NETNS"
  ip link add "${VETH}a" type veth peer name "${VETH}b" netns "$NETNS"
  ip addr add "$A_ADDR/30" dev "${VETH}a"
  ip link set "${VETH}a" up
  ip -n "$NETNS" addr add "$B_ADDR/30" dev "${VETH}b"
  ip -n "$NETNS" link set "${VETH}b" up
  ip -n "$NETNS" link set lo up

  # The bench workload w0 may reach itself (loopback) and bench-remote (B's
  # listener, by the fleet identity of its labels) on $PA; a Workload of
  # that name here gives A the label set (no cgroup of A matches it).
  cat >"$CL/policy/policy.yaml" <<YAML
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: w0}
spec:
  cgroups: ["w0"]
  labels: {app: w0}
---
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: bench-remote}
spec:
  cgroups: ["bench-remote-on-another-node"]
  labels: {app: bench-remote}
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: w0}
spec:
  selector: {identity: w0}
  egress:
    - to: [{identity: w0}, {identity: bench-remote}]
      ports: [{port: $PA, protocol: TCP}]
  ingress:
    - from: [{identity: w0}]
      ports: [{port: $PA, protocol: TCP}]
YAML
  DLOG="$WORK/microsegd-cluster.log"
  "$MSD" --cgroup-root "$MSROOT" --policy "$CL/policy/policy.yaml" --mode enforce --socket "$SOCK" --state-dir "$STATE" \
    --etcd-endpoints "$ETCD_URL" --node-name bench-a --node-address "$A_ADDR" --data-dir "$CL/a" 2>"$DLOG" &
  DAEMON_PID=$!
  for _ in $(seq 600); do
    "$MSC" status >/dev/null 2>&1 && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { echo "bench: microsegd (cluster mode) exited" >&2; exit 1; }
    sleep 0.1
  done
  wait_generation 1
  "$CTOOL" run --etcd "$ETCD_URL" --node-name bench-b --data-dir "$CL/b" --socket "$SOCK" --stats-pin-dir "$STATE" \
    --cgroup "$MSROOT/w0" --local-port "$PA" --remote "$B_ADDR" --remote-port "$PA" --remote-netns "/run/netns/$NETNS" \
    --addresses "$CL_ADDRS" --listeners "$CL_LISTENERS" --changes "$CL_CHANGES" --rounds "$CL_ROUNDS" \
    --iters "$CL_ITERS" >"$CL/raw.jsonl" &
  TOOL_PID=$!
  wait "$TOOL_PID"
  TOOL_PID=""
  cat "$CL/raw.jsonl" >>"$RAW"
  note "$(jq -rs '[.[] | select(.section=="cluster_connect") | "\(.target) \(.progs | to_entries | map(select(.key | startswith("ms_connect4"))) | .[0].value.ns_per_run // 0 | floor)"] | join(", ")' "$CL/raw.jsonl") ns per connect4 run"
  CLUSTER_RAN=1
  "$MSC" uninstall >/dev/null
  for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
  wait "$DAEMON_PID" 2>/dev/null || true
  DAEMON_PID=""
}

# ---- 6. wire identity (a function: run after section 5, or alone with --wire-only) ----
# Two real nodes: A (microsegd here, cgroup root $MSROOT, state $STATE) and B
# (microsegd in the netns $WNETNS, entered with nsenter --net only, so it
# sees this host's bpffs and cgroup2; cgroup root $BENCH/msb, state $BSTATE),
# through an etcd of their own. w0 (A) may reach srv (B) on $PA, TCP and UDP;
# srv admits w0 and also node A's own identity (what a SYN without the
# option is judged as), so the OFF rounds connect too.
stop_etcd() {
  [[ -n "$ETCD_PID" ]] || return 0
  kill -TERM "$ETCD_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$ETCD_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$ETCD_PID" 2>/dev/null || true
  wait "$ETCD_PID" 2>/dev/null || true
  ETCD_PID=""
}
wire_section() {
  say "6. Wire identity: node A (microsegd) -> node B (microsegd in a netns), signing ON vs OFF, $W_ROUNDS rounds"
  [[ -x /usr/bin/etcd ]] || { echo "bench: /usr/bin/etcd missing (scripts/setup.sh installs etcd-server); --no-cluster skips section 6" >&2; exit 1; }
  command -v nsenter >/dev/null || { echo "bench: nsenter (util-linux) missing" >&2; exit 1; }
  stop_etcd   # section 5's: this section's nodes start from an empty store
  W="$WORK/wire"
  mkdir -p "$W/policy" "$W/a" "$W/b"
  # A /30 of 198.18.0.0/16 per pid, 128 /24s away from section 5's (its
  # routes may still be there when both run).
  local net4="198.18.$(((($$ / 64) + 128) % 256)).$((($$ % 64) * 4))"
  WA_ADDR="${net4%.*}.$((${net4##*.} + 1))"
  WB_ADDR="${net4%.*}.$((${net4##*.} + 2))"
  ip netns add "$WNETNS"
  ip link add "${WVETH}a" type veth peer name "${WVETH}b" netns "$WNETNS"
  ip addr add "$WA_ADDR/30" dev "${WVETH}a"
  ip link set "${WVETH}a" up
  ip -n "$WNETNS" addr add "$WB_ADDR/30" dev "${WVETH}b"
  ip -n "$WNETNS" link set "${WVETH}b" up
  ip -n "$WNETNS" link set lo up

  port_free() { ! ss -Htln "sport = :$1" | grep -q .; }
  local ec="" ep="" c k
  for ((k = 0; k < 50; k++)); do
    c=$((20001 + (($$ + k * 7919) % 9000) * 2))
    if port_free "$c" && port_free $((c + 1)); then ec=$c ep=$((c + 1)); break; fi
  done
  [[ -n "$ec" ]] || { echo "bench: no two free ports for etcd" >&2; exit 1; }
  local url="http://127.0.0.1:$ec" burl="http://$WA_ADDR:$ec"
  /usr/bin/etcd --name wire --data-dir "$W/etcd" --listen-client-urls "$url,$burl" --advertise-client-urls "$url" \
    --listen-peer-urls "http://127.0.0.1:$ep" --initial-advertise-peer-urls "http://127.0.0.1:$ep" \
    --initial-cluster "wire=http://127.0.0.1:$ep" --initial-cluster-state new --initial-cluster-token "microseg-bench-w-$$" \
    --log-level warn --logger zap >"$W/etcd.log" 2>&1 &
  ETCD_PID=$!
  for _ in $(seq 100); do
    curl -sf "$url/health" 2>/dev/null | grep -q '"health":"true"' && break
    kill -0 "$ETCD_PID" 2>/dev/null || { echo "bench: etcd exited:" >&2; tail -5 "$W/etcd.log" >&2; exit 1; }
    sleep 0.1
  done
  curl -sf "$url/health" >/dev/null || { echo "bench: etcd not healthy after 10 s" >&2; exit 1; }
  ip netns exec "$WNETNS" curl -sf "$burl/health" >/dev/null || { echo "bench: etcd not reachable from $WNETNS at $burl" >&2; exit 1; }
  note "etcd on $url and $burl (pid $ETCD_PID); A $WA_ADDR, B $WB_ADDR in netns $WNETNS"

  mkdir -p "$MSROOT/w0" "$BENCH/msb/srv" "$BENCH/plain"
  cat >"$W/policy/policy.yaml" <<YAML
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: w0}
spec:
  cgroups: ["w0"]
  labels: {app: w0}
---
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: srv}
spec:
  cgroups: ["srv"]
  labels: {app: bench-srv}
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: w0}
spec:
  selector: {identity: w0}
  egress:
    - to: [{identity: srv}]
      ports: [{port: $PA, protocol: TCP}, {port: $PA, protocol: UDP}]
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: srv}
spec:
  selector: {identity: srv}
  ingress:
    - from: [{identity: w0}, {matchLabels: {microseg.dev/node: wire-a}}]
      ports: [{port: $PA, protocol: TCP}, {port: $PA, protocol: UDP}]
YAML
  DLOG="$WORK/microsegd-wire-a.log"
  local blog="$WORK/microsegd-b.log"
  "$MSD" --cgroup-root "$MSROOT" --policy "$W/policy/policy.yaml" --mode enforce --socket "$SOCK" --state-dir "$STATE" \
    --etcd-endpoints "$url" --node-name wire-a --node-address "$WA_ADDR" --data-dir "$W/a" 2>"$DLOG" &
  DAEMON_PID=$!
  nsenter --net="/run/netns/$WNETNS" "$MSD" --cgroup-root "$BENCH/msb" --policy "$W/policy/policy.yaml" --mode enforce \
    --socket "$BSOCK" --state-dir "$BSTATE" --etcd-endpoints "$burl" --node-name wire-b --node-address "$WB_ADDR" \
    --data-dir "$W/b" 2>"$blog" &
  B_PID=$!
  for _ in $(seq 600); do
    "$MSC" status >/dev/null 2>&1 && MICROSEG_SOCKET="$BSOCK" "$MSC" status >/dev/null 2>&1 && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { echo "bench: microsegd (node A) exited" >&2; exit 1; }
    kill -0 "$B_PID" 2>/dev/null || { echo "bench: microsegd (node B) exited:" >&2; tail -15 "$blog" >&2; exit 1; }
    sleep 0.1
  done
  wait_generation 1
  local out="$W/raw.jsonl"
  "$WTOOL" run --a-state "$STATE" --b-state "$BSTATE" --a-socket "$SOCK" --b-socket "$BSOCK" \
    --a-root "$MSROOT" --b-root "$BENCH/msb" --cgroup "$MSROOT/w0" --unmanaged-cgroup "$BENCH/plain" --listener-cgroup "$BENCH/msb/srv" \
    --netns "/run/netns/$WNETNS" --dest "$WB_ADDR" --port "$PA" --rounds "$W_ROUNDS" --iters "$W_ITERS" \
    --udp-iters "$W_UDP_ITERS" >"$out" &
  TOOL_PID=$!
  local rc=0
  wait "$TOOL_PID" || rc=$?
  TOOL_PID=""
  cat "$out" >>"$RAW"
  ((rc == 0)) || { echo "bench: section 6 failed (microseg-bench-wire exit $rc)" >&2; exit 1; }
  note "$(jq -rs '[.[] | select(.section=="wire" and .caller=="workload" and .kind=="tcp4") | "\(.signing) \([.progs["a.ms_connect4","a.ms_sockops","a.ms_ingress","b.ms_ingress","b.ms_sockops"].ns_per_op | values] | add | floor)"] | join(", ")' "$out") ns per connect (5 programs), by round"
  note "counters: A $("$MSC" status -o json | jq -c '.counters | with_entries(select(.key | startswith("wire")))'), B $(MICROSEG_SOCKET="$BSOCK" "$MSC" status -o json | jq -c '.counters | with_entries(select(.key | startswith("wire")))')"
  WIRE_RAN=1
  MICROSEG_SOCKET="$BSOCK" "$MSC" uninstall >/dev/null
  "$MSC" uninstall >/dev/null
  for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || kill -0 "$B_PID" 2>/dev/null || break; sleep 0.1; done
  wait "$DAEMON_PID" 2>/dev/null || true
  wait "$B_PID" 2>/dev/null || true
  DAEMON_PID="" B_PID=""
  stop_etcd
}

# Policy files are all generated before microsegd starts, each in a directory
# of its own (the daemon watches the directory of its policy file; it reloads
# only for that file, but nothing else should happen near the measurement).
policy_file() { echo "$WORK/policies/r$1-i$2$3/policy.yaml"; }
gen_policy() {  # rules identities [changed]
  local f; f=$(policy_file "$1" "$2" "${3:+-changed}")
  if [[ ! -f "$f" ]]; then
    mkdir -p "$(dirname "$f")"
    "$TOOL" gen-policy --rules "$1" --identities "$2" --allow-port "$PA" --out "$f" ${3:+--changed} >/dev/null
  fi
  echo "$f"
}
for cfg in "${HOOK_CONFIGS[@]}" "$PATH_CONFIG"; do
  ((CLUSTER_ONLY || WIRE_ONLY || FQDN_ONLY)) && break
  read -r R I <<<"$cfg"
  gen_policy "$R" "$I" >/dev/null
  gen_policy "$R" "$I" changed >/dev/null
done
daemon_apply_ms() {  # ms of the latest "generation N applied" line
  grep -o 'generation [0-9]* applied.*' "$DLOG" | tail -1 | grep -o 'map writes, [0-9.]* ms' | grep -o '[0-9.]* ms' | cut -d' ' -f1
}
last_generation() { grep -o 'generation [0-9]* applied' "$DLOG" | tail -1 | awk '{print $2}'; }
wait_generation() {  # wait until generation >= $1 is applied (bounded)
  for _ in $(seq 3000); do
    local g
    g=$(last_generation)
    [[ -n "$g" && "$g" -ge "$1" ]] && return 0
    kill -0 "$DAEMON_PID" 2>/dev/null || { echo "bench: microsegd died" >&2; return 1; }
    sleep 0.1
  done
  echo "bench: generation $1 not applied within 300 s" >&2
  return 1
}
apply_policy() {  # file -> applies it (waits on the log line, not the CLI's 30 s timeout)
  local next=$(($(last_generation) + 1))
  "$MSC" policy apply "$1" >/dev/null 2>&1 &
  local cli=$!
  wait_generation "$next"
  wait "$cli" 2>/dev/null || true
}
retry() {  # the daemon answers nothing while it applies a big policy
  for _ in $(seq 30); do "$@" && return 0; sleep 1; done
  return 1
}
set_mode() { retry "$MSC" mode "$1" >/dev/null; }
status() { retry "$MSC" status -o json; }

CLUSTER_RAN=0
WIRE_RAN=0
if ((WIRE_ONLY)); then
  wire_section
  say "Results ($(($(date +%s) - STARTED)) s, section 6 only)"
  mkdir -p "$(dirname "$JSON_OUT")"
  rm -f "$JSON_OUT"
  "$WTOOL" report --in "$RAW" --json "$JSON_OUT"
  exit 0
fi
if ((CLUSTER_ONLY)); then
  cluster_section
  say "Results ($(($(date +%s) - STARTED)) s, section 5 only)"
  mkdir -p "$(dirname "$JSON_OUT")"
  rm -f "$JSON_OUT"
  "$CTOOL" report --in "$RAW" --json "$JSON_OUT"
  exit 0
fi

# ---- 1. per-hook cost -----------------------------------------------------------
((FQDN_ONLY)) || say "1. Per-hook cost (kernel bpf stats), empty-program floor first"
for ((rep = 0; rep < HOOK_REPS * !FQDN_ONLY; rep++)); do
  run_tool floor --cgroup "$BENCH/floor" --iters "$HOOK_ITERS" --port "$PA" >"$WORK/floor.json"
  jq -c '.[] | {section:"floor"} + .' "$WORK/floor.json" >>"$RAW"
done
((FQDN_ONLY)) || note "floor: $(jq -rs '[.[] | select(.section=="floor") | .progs.empty_connect4.ns_per_run // empty | floor] | map(tostring) | join(" / ")' "$RAW") ns per empty connect4 run (repetitions)"

# 1f's addresses (scripts/bench/fqdn.sh): its DNS responder is a resolver microsegd trusts.
source "$REPO/scripts/bench/fqdn.sh"
read -r R0 I0 <<<"${HOOK_CONFIGS[0]}"
say "Starting microsegd (cgroup root $MSROOT, state $STATE)"
"$MSD" --cgroup-root "$MSROOT" --policy "$(gen_policy "$R0" "$I0")" --mode enforce \
  --socket "$SOCK" --state-dir "$STATE" --flow-log "$FLOWS" --data-dir "$WORK/data" --fqdn-resolvers "$(fqdn_resolvers)" 2>"$DLOG" &
DAEMON_PID=$!
for _ in $(seq 600); do
  "$MSC" status >/dev/null 2>&1 && break
  kill -0 "$DAEMON_PID" 2>/dev/null || { echo "bench: microsegd exited" >&2; exit 1; }
  sleep 0.1
done
wait_generation 1

# 1f. FQDN peers, side by side (scripts/bench/fqdn.sh, sourced above): with --fqdn-only, here and alone.
# BENCH_FQDN_ROUNDS overrides its rounds.
FQDN_TITLE="1f. FQDN peers: DNS answers at ingress (1/8/32 records) and connect4 to a remote address, policy with / without an fqdn peer"
if ((FQDN_ONLY)); then
  say "$FQDN_TITLE, ${BENCH_FQDN_ROUNDS:-$FLAT_ROUNDS} rounds"
  fqdn_section "${BENCH_FQDN_ROUNDS:-$FLAT_ROUNDS}"
  say "Results ($(($(date +%s) - STARTED)) s, section 1f only: the figures above; its records: $JSON_OUT)"
  mkdir -p "$(dirname "$JSON_OUT")"
  jq -s '[.[] | select(.section == "meta" or .section == "fqdn")]' "$RAW" >"$JSON_OUT"
  echo "kernel mitigations: $MITIGATIONS"
  exit 0
fi

for cfg in "${HOOK_CONFIGS[@]}"; do
  read -r R I <<<"$cfg"
  f=$(gen_policy "$R" "$I")
  expected=$((R + 3))
  # The daemon runs on a live copy (in a directory of its own), edited in
  # place for the one-rule change below.
  live="$WORK/live-r$R-i$I/policy.yaml"
  mkdir -p "$(dirname "$live")"
  cp "$f" "$live"
  apply_policy "$live"
  full_ms=$(daemon_apply_ms)
  entries=$(status | jq '.policy.entries')
  idents=$(status | jq '.policy.identities')
  note "policy $R rules / $I identities: $entries map entries (expected $expected), $idents identities, daemon applied in ${full_ms} ms"
  if [[ "$entries" != "$expected" || "$idents" != "$I" ]]; then
    echo "bench: policy map holds $entries entries / $idents identities, expected $expected / $I" >&2
    exit 1
  fi
  raw "$(jq -nc --arg c "r$R-i$I" --argjson r "$R" --argjson i "$I" --argjson e "$entries" --argjson x "$expected" \
    '{section:"hook_config", config:$c, rules:$r, identities:$i, entries:$e, expected_entries:$x}')"
  for mode in enforce monitor; do
    set_mode "$mode"
    port=$PA; [[ $mode == monitor ]] && port=$PD
    for ((rep = 0; rep < HOOK_REPS; rep++)); do
    for kind in tcp4 tcp6 udp4 udp6 udpnew4; do
      out=$(run_tool loop --cgroup "$MSROOT/w0" --kind "$kind" --port "$port" --iters "$HOOK_ITERS" --stats-pin-dir "$STATE")
      raw "$(jq -c --arg c "r$R-i$I" --arg m "$mode" '{section:"hook", config:$c, mode:$m} + .' <<<"$out")"
      if [[ $(jq '.errors' <<<"$out") != 0 ]]; then
        note "!! $mode $kind: $(jq -r '"\(.errors) errors (\(.errno))"' <<<"$out")"
      fi
    done
    done
    note "$mode: $(jq -rs --arg c "r$R-i$I" --arg m "$mode" '[.[] | select(.section=="hook" and .config==$c and .mode==$m) | (.progs.ms_connect4.ns_per_run // empty | floor)] | map(tostring) | join(" / ")' "$RAW") ns per connect4 run (repetitions)"
  done
  set_mode enforce
  # One-rule change through the daemon (the last filler rule's port moves),
  # five times (there, back, there...: the first is the first change after
  # a full reload; five, not three, because a change of a few ms is as
  # noisy as this shared VM): the live file is replaced by rename, as
  # editors and GitOps tools do, and the daemon's watcher reloads it.
  changes=()
  for k in 0 1 2 3 4; do
    next=$(($(last_generation) + 1))
    if ((k % 2 == 0)); then cp "$(gen_policy "$R" "$I" changed)" "$WORK/live-next.yaml"; else cp "$f" "$WORK/live-next.yaml"; fi
    mv "$WORK/live-next.yaml" "$live"
    wait_generation "$next"
    changes+=("$(daemon_apply_ms)")
  done
  change_docs=$(grep -o 'generation [0-9]* applied.*' "$DLOG" | tail -1 | grep -o '[0-9]* of [0-9]* documents parsed')
  changes_json=$(printf '%s\n' "${changes[@]}" | jq -s -c '.')
  raw "$(jq -nc --argjson r "$R" --argjson i "$I" --argjson a "${full_ms:-null}" --argjson c "$changes_json" \
    '{section:"cp_daemon", rules:$r, identities:$i, apply_ms:$a, change_ms:($c | sort | .[(length / 2 | floor)]), change_ms_all:$c}')"
  note "one-rule change applied by the daemon in ${changes[*]} ms ($change_docs)"
done

# Flat in rules, side by side: the configurations above are measured one
# after another over minutes, and this VM drifts by 20-40% in that time. The
# fewest and the most rules (same identities) are applied in turn and
# connect4 measured right after each, so a round's ratio compares runs a
# few seconds apart.
FLAT_FEW="" FLAT_MANY=""
for cfg in "${HOOK_CONFIGS[@]}"; do
  read -r R I <<<"$cfg"
  for other in "${HOOK_CONFIGS[@]}"; do
    read -r R2 I2 <<<"$other"
    if [[ $I2 == "$I" ]] && ((R2 > R)) && { [[ -z $FLAT_MANY ]] || ((R2 - R > ${FLAT_MANY%% *} - ${FLAT_FEW%% *})); }; then
      FLAT_FEW="$R $I" FLAT_MANY="$R2 $I2"
    fi
  done
done
if [[ -n $FLAT_MANY ]]; then
  say "1b. Flat in rules: $FLAT_FEW and $FLAT_MANY rules / identities in turn, $FLAT_ROUNDS rounds"
  for ((round = 0; round < FLAT_ROUNDS; round++)); do
    for cfg in "$FLAT_FEW" "$FLAT_MANY"; do
      read -r R I <<<"$cfg"
      apply_policy "$(gen_policy "$R" "$I")"
      out=$(run_tool loop --cgroup "$MSROOT/w0" --kind tcp4 --port "$PA" --iters "$HOOK_ITERS" --stats-pin-dir "$STATE")
      raw "$(jq -c --argjson round "$round" --argjson r "$R" --argjson i "$I" '{section:"flat", round:$round, rules:$r, identities:$i} + .' <<<"$out")"
    done
  done
  note "connect4 ns per run, $FLAT_FEW / $FLAT_MANY: $(jq -rs '[.[] | select(.section=="flat") | (.progs.ms_connect4.ns_per_run // 0 | floor | tostring)] | join(" ")' "$RAW")"
fi

# 1c. Grants side by side (scripts/bench/grants.sh).
source "$REPO/scripts/bench/grants.sh"
# BENCH_GRANT_ROUNDS overrides its rounds.
say "1c. Allowed connect4 with the grant map empty and with grants present, ${BENCH_GRANT_ROUNDS:-$FLAT_ROUNDS} rounds"
grants_section "${BENCH_GRANT_ROUNDS:-$FLAT_ROUNDS}"

# 1d. The observed-edge update, side by side (scripts/bench/edges.sh).
source "$REPO/scripts/bench/edges.sh"
# BENCH_EDGE_ROUNDS overrides its rounds.
say "1d. connect4: enforce / monitor, with and without the edge update, ${BENCH_EDGE_ROUNDS:-$FLAT_ROUNDS} rounds"
edges_section "${BENCH_EDGE_ROUNDS:-$FLAT_ROUNDS}"

# 1e. Connection ages stamped or not, side by side (scripts/bench/ages.sh).
source "$REPO/scripts/bench/ages.sh"
# BENCH_AGE_ROUNDS overrides its rounds.
say "1e. TCP connect loop with connection ages off / on (revocation possible), ${BENCH_AGE_ROUNDS:-$FLAT_ROUNDS} rounds"
ages_section "${BENCH_AGE_ROUNDS:-$FLAT_ROUNDS}"

# 1f. FQDN peers side by side (scripts/bench/fqdn.sh, sourced before microsegd started).
say "$FQDN_TITLE, ${BENCH_FQDN_ROUNDS:-$FLAT_ROUNDS} rounds"
fqdn_section "${BENCH_FQDN_ROUNDS:-$FLAT_ROUNDS}"

if ((HOOKS_ONLY)); then
  say "Results ($(($(date +%s) - STARTED)) s, section 1 only)"
  "$TOOL" report --in "$RAW" --json "$JSON_OUT"
  echo "kernel mitigations: $MITIGATIONS"
  exit 0
fi

# ---- 2. connection path ------------------------------------------------------------
say "2. Connection path: interleaved rounds (no program / microseg / nftables)"
read -r R I <<<"$PATH_CONFIG"
apply_policy "$(gen_policy "$R" "$I")"
set_mode enforce

# nftables: the same policy for the cgroup $BENCH/nft. A base output chain
# sends only that cgroup's packets into the rules (nothing else on this host
# evaluates them); N non-matching rules (other daddr/dport) precede the real
# one, or one verdict-map lookup. No conntrack shortcut: evaluated per packet.
# nft resolves `socket cgroupv2` paths below /sys/fs/cgroup (also on hybrid
# layouts where cgroup2 is mounted at /sys/fs/cgroup/unified).
case "$CG2" in
  /sys/fs/cgroup) NFT_CG="microseg-bench-$$/nft" ;;
  /sys/fs/cgroup/*) NFT_CG="${CG2#/sys/fs/cgroup/}/microseg-bench-$$/nft" ;;
  *) echo "bench: cgroup2 is mounted at $CG2, outside /sys/fs/cgroup: nft cannot name its cgroups" >&2; exit 1 ;;
esac
gen_nft() {  # kind (linear|vmap) n file
  local kind=$1 n=$2 out=$3
  {
    echo "table inet $NFT_TABLE {"
    echo "  chain rules {"
    if [[ $kind == linear ]]; then
      awk -v n="$n" -v cg="$NFT_CG" 'BEGIN { for (k = 0; k < n; k++)
        printf "    socket cgroupv2 level 2 \"%s\" ip daddr 10.%d.%d.%d tcp dport %d accept\n", cg, int(k/65536)%256, int(k/256)%256, k%256, 1024 + k%30000 }'
      echo "    socket cgroupv2 level 2 \"$NFT_CG\" ip daddr 127.0.0.1 tcp dport $PA accept"
      echo "    socket cgroupv2 level 2 \"$NFT_CG\" ip daddr 127.0.0.1 udp dport $PA accept"
    else
      printf '    socket cgroupv2 level 2 "%s" meta l4proto . ip daddr . th dport vmap {\n' "$NFT_CG"
      awk -v n="$n" 'BEGIN { for (k = 0; k < n; k++)
        printf "      tcp . 10.%d.%d.%d . %d : accept,\n", int(k/65536)%256, int(k/256)%256, k%256, 1024 + k%30000 }'
      echo "      tcp . 127.0.0.1 . $PA : accept, udp . 127.0.0.1 . $PA : accept }"
    fi
    echo "  }"
    echo "  chain output {"
    echo "    type filter hook output priority 0; policy accept;"
    echo "    socket cgroupv2 level 2 \"$NFT_CG\" jump rules"
    echo "  }"
    echo "}"
  } >"$out"
}
gen_nft linear 1000 "$WORK/nft-lin-1k.nft"
gen_nft linear 10000 "$WORK/nft-lin-10k.nft"
gen_nft vmap 10000 "$WORK/nft-vmap-10k.nft"

VARIANTS=(none ms_enforce ms_monitor nft_lin_1k nft_lin_10k nft_vmap)
declare -A VDESC=(
  [none]="no program (baseline)"
  [ms_enforce]="microseg enforce, allowed ($R rules/$I ids)"
  [ms_monitor]="microseg monitor, every call audited"
  [nft_lin_1k]="nftables 1k linear rules"
  [nft_lin_10k]="nftables 10k linear rules"
  [nft_vmap]="nftables verdict map (10k elements)")
declare -A VCG=([none]="$BENCH/plain" [ms_enforce]="$MSROOT/w0" [ms_monitor]="$MSROOT/w0"
  [nft_lin_1k]="$BENCH/nft" [nft_lin_10k]="$BENCH/nft" [nft_vmap]="$BENCH/nft")
declare -A VNFT=([nft_lin_1k]="$WORK/nft-lin-1k.nft" [nft_lin_10k]="$WORK/nft-lin-10k.nft" [nft_vmap]="$WORK/nft-vmap-10k.nft")
for v in "${!VNFT[@]}"; do  # check each ruleset loads (and how long it takes)
  t0=$(date +%s%N); nft -f "${VNFT[$v]}"; t1=$(date +%s%N)
  nft delete table inet "$NFT_TABLE"
  note "$v: ruleset loads in $(((t1 - t0) / 1000000)) ms"
done

nv=${#VARIANTS[@]}
for ((round = 0; round < PATH_ROUNDS; round++)); do
  for ((j = 0; j < nv; j++)); do
    v=${VARIANTS[$(((j + round) % nv))]}   # rotate the order every round
    port=$PA
    case $v in
      ms_enforce) set_mode enforce ;;
      ms_monitor) set_mode monitor; port=$PD ;;
    esac
    [[ -n "${VNFT[$v]:-}" ]] && nft -f "${VNFT[$v]}"
    for kind in tcp4 udp4; do
      out=$(run_tool loop --cgroup "${VCG[$v]}" --kind "$kind" --port "$port" --iters "$PATH_ITERS" --seconds "$PATH_SECONDS")
      raw "$(jq -c --arg v "$v" --arg d "${VDESC[$v]}" --argjson r "$round" \
        '{section:"path", variant:$v, desc:$d, round:$r} + .' <<<"$out")"
    done
    [[ -n "${VNFT[$v]:-}" ]] && nft delete table inet "$NFT_TABLE"
  done
  note "round $((round + 1))/$PATH_ROUNDS: $(jq -rs --argjson r "$round" '[.[] | select(.section=="path" and .round==$r and .kind=="tcp4") | "\(.variant) \(.ns_per_op|floor)"] | join(", ")' "$RAW") ns/connect"
done
set_mode enforce

# ---- 4. event path -------------------------------------------------------------
say "4. Event path: audited connect flood ($FLOOD_SECONDS s, 2 processes, monitor mode)"
# The daemon's peak RSS so far (every policy of sections 1 and 1b applied),
# apart from what the flood adds (its events pass through the daemon's spool).
HWM_BEFORE_FLOOD=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
set_mode monitor
sleep 1.5   # let the periodic flush write out earlier counts
flow_sum() { jq -s '[.[] | select(.verdict=="audit") | (.count // 1)] | add // 0' "$FLOWS" 2>/dev/null || echo 0; }
s0=$(status | jq -c .counters)
lines0=$(flow_sum)
t0=$(date +%s.%N)
out=$(run_tool loop --cgroup "$MSROOT/w0" --kind uconn4 --port "$PD" --iters 100000000 --seconds "$FLOOD_SECONDS" --procs 2)
t1=$(date +%s.%N)
# Wait (bounded) until the flow log accounts for every audited event.
for _ in $(seq 100); do
  s1=$(status | jq -c .counters)
  want=$(( $(jq '.audited' <<<"$s1") - $(jq '.audited' <<<"$s0") - ($(jq '.events_lost' <<<"$s1") - $(jq '.events_lost' <<<"$s0")) ))
  got=$(( $(flow_sum) - lines0 ))
  [[ $got -ge $want ]] && break
  sleep 0.1
done
t2=$(date +%s.%N)
s1=$(status | jq -c .counters)
got=$(( $(flow_sum) - lines0 ))
set_mode enforce
raw "$(jq -nc --argjson o "$out" --argjson s0 "$s0" --argjson s1 "$s1" --argjson lines "$got" \
  --argjson t0 "$t0" --argjson t1 "$t1" --argjson t2 "$t2" '
  ($s1.audited - $s0.audited) as $aud |
  ($s1.events_lost - $s0.events_lost) as $lost |
  {section:"events", kind:"UDP connect() to a denied port", procs:$o.procs, seconds:($t1-$t0), ops:$o.iters,
   ops_per_s:($o.iters/($t1-$t0)), audited:$aud, events_lost:$lost, flow_lines:$lines,
   drained_after_s:($t2-$t1), events_per_s:($lines/($t2-$t0)), consistent:($aud == $lines + $lost)}')"
note "$(tail -1 "$RAW" | jq -r '"\(.ops) connects in \(.seconds*10|floor/10) s, audited \(.audited), in the flow log \(.flow_lines), lost \(.events_lost), drained \(.drained_after_s*10|floor/10) s after the flood"')"

# ---- 3. control plane ------------------------------------------------------------
say "3. Control plane (in-process: parse, compile, applyGeneration into unattached maps)"
DAEMON_HWM=$(awk '/VmHWM/ {print $2}' "/proc/$DAEMON_PID/status")
# Of its resident pages, those of BPF map mappings: the event ring buffer's
# data pages are mapped twice (a record that wraps reads contiguously) and
# are resident from the start, so they count twice in RSS.
DAEMON_MAP_RSS=$(awk '/^[0-9a-f]+-[0-9a-f]+ / {name = $6} /^Rss:/ && name ~ /bpf-map/ {s += $2} END {print s + 0}' \
  "/proc/$DAEMON_PID/smaps")
raw "$(jq -nc --argjson k "$DAEMON_HWM" --argjson f "$HWM_BEFORE_FLOOD" --argjson m "$DAEMON_MAP_RSS" \
  '{section:"rss", vmhwm_kib:$k, vmhwm_before_flood_kib:$f, bpf_map_rss_kib:$m}')"
note "microsegd VmHWM: $DAEMON_HWM KiB, $HWM_BEFORE_FLOOD KiB before the event flood (BPF map mappings resident now: $DAEMON_MAP_RSS KiB)"
# Stop the daemon now: the control-plane tool needs the CPU.
"$MSC" uninstall >/dev/null
for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
out=$(run_tool controlplane --cgroup-root "$MSROOT" --state-dir "$CPSTATE" --combos "$CP_COMBOS" --policy-dir "$WORK/cp" \
  --allow-port "$PA")
raw "$(jq -c '{section:"cp_tool"} + .' <<<"$out")"

((NO_CLUSTER)) || cluster_section
((NO_CLUSTER)) || wire_section

# ---- report -------------------------------------------------------------------------
say "Results ($(($(date +%s) - STARTED)) s)"
mkdir -p "$(dirname "$JSON_OUT")"
"$TOOL" report --in "$RAW" --json "$JSON_OUT"
if ((CLUSTER_RAN)); then echo; "$CTOOL" report --in "$RAW" --json "$JSON_OUT"; fi
if ((WIRE_RAN)); then echo; "$WTOOL" report --in "$RAW" --json "$JSON_OUT"; fi
echo
echo "date $(date -u +%Y-%m-%d), kernel $(uname -r), $(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)); JSON: $JSON_OUT"
echo "kernel mitigations: $MITIGATIONS"
