#!/usr/bin/env bash
# microseg demo: a small shop (frontend -> checkout -> payments -> db) as real
# processes in a throwaway cgroup tree. First the blast radius of a flat
# network (`microseg reach`), then microsegd on policies/examples/: the
# blast radius again, monitor mode (would-deny flows are audited), then
# enforce (a lateral-movement attempt is refused, the legitimate path still
# works).
#
#   scripts/demo.sh          run it end to end and clean up
#   scripts/demo.sh --keep   leave it running for exploring with the CLI;
#                            Ctrl-C cleans up
#   scripts/demo.sh --cluster [--keep]
#                            two hosts (netns) sharing one policy through a
#                            local etcd (scripts/demo_cluster.sh)
#
# Safety: BPF programs are attached only to the demo's own cgroup
# (<cgroup2 mount>/microseg-demo-<pid>), traffic stays on 127.0.0.1, and
# cleanup kills only the processes this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

KEEP=0
for arg in "$@"; do
  [[ $arg == --cluster ]] && exec scripts/demo_cluster.sh "$@"
done
for arg in "$@"; do
  case "$arg" in
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: run as root (it loads BPF programs into its own throwaway cgroup)" >&2
  exit 1
fi

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bold "Installing dependencies and building"
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target microsegd microseg >/dev/null
echo "built build/microsegd and build/microseg"

CG2=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
[[ -n "$CG2" ]] || { echo "demo: no cgroup2 mount in /proc/mounts" >&2; exit 1; }
ROOT="$CG2/microseg-demo-$$"
WORK=$(mktemp -d /tmp/microseg-demo.XXXXXX)
STATE=/sys/fs/bpf/microseg-demo-$$
SOCK="$WORK/microseg.sock"
FLOWS="$WORK/flows.jsonl"
export MICROSEG_SOCKET="$SOCK"
PIDS=()
DAEMON_PID=""

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [[ -n "$DAEMON_PID" ]]; then
    # SIGTERM alone would leave the pinned programs enforcing (by design);
    # uninstall detaches and removes them.
    build/microseg uninstall >/dev/null 2>&1 || kill -TERM "$DAEMON_PID" 2>/dev/null
    wait "$DAEMON_PID" 2>/dev/null
  fi
  build/microsegd --cleanup --state-dir "$STATE" 2>/dev/null
  if [[ -d "$ROOT" ]]; then
    # socat forks a child per connection inside the same cgroups: cgroup.kill
    # ends every process of the demo's own tree (and nothing outside it).
    echo 1 >"$ROOT/cgroup.kill" 2>/dev/null
    sleep 0.2
    find "$ROOT" -depth -type d -exec rmdir {} \; 2>/dev/null
  fi
  rm -rf "$STATE" "$WORK"
  echo "demo: cleaned up (cgroups, BPF state, processes, temp files)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run a command inside a cgroup: the shell moves itself, then execs.
in_cgroup() {
  local cg="$1"; shift
  bash -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$ROOT/$cg" "$@"
}

declare -A PORT=([frontend]=8000 [checkout]=8080 [payments]=8443 [postgres]=15432)
bold "Starting the shop in $ROOT"
for svc in frontend checkout payments postgres; do
  mkdir -p "$ROOT/system.slice/$svc.service"
  in_cgroup "system.slice/$svc.service" socat "TCP-LISTEN:${PORT[$svc]},bind=127.0.0.1,fork,reuseaddr" \
    "SYSTEM:echo $svc answers" </dev/null >/dev/null 2>&1 &
  PIDS+=($!)
  printf '  %-9s listening on 127.0.0.1:%s (cgroup system.slice/%s.service)\n' "$svc" "${PORT[$svc]}" "$svc"
done
sleep 0.3

FAILURES=0
# Before: the shop's workloads on a flat network (every workload may call
# every other on any port), as most networks are inside.
mkdir -p "$WORK/flat"
awk 'BEGIN{RS="\n---\n"; ORS=""} /kind: Workload/ {print $0 "\n---\n"}' policies/examples/shop.yaml |
  grep -v '^#' >"$WORK/flat/shop.yaml"
cat >>"$WORK/flat/shop.yaml" <<'YAML'
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: flat-network}
spec:
  selector: {matchExpressions: [{key: app, operator: Exists}]}
  egress:
    - to: [{matchExpressions: [{key: app, operator: Exists}]}]
  ingress:
    - from: [{matchExpressions: [{key: app, operator: Exists}]}]
YAML

bold "Starting microsegd in monitor mode on a flat network (the shop's workloads, everything allowed)"
build/microsegd --cgroup-root "$ROOT" --policy "$WORK/flat" --mode monitor \
  --socket "$SOCK" --state-dir "$STATE" --flow-log "$FLOWS" 2>"$WORK/microsegd.log" &
DAEMON_PID=$!
for _ in $(seq 50); do build/microseg status >/dev/null 2>&1 && break; sleep 0.1; done

# direct_reach W: how many workloads W can open directly under the policy in force.
direct_reach() {
  build/microseg reach --all -o json | jq -r --arg w "$1" '.ranking[] | select(.workload == $w) | .direct'
}
bold "Blast radius before: microseg reach frontend; microseg reach --all"
build/microseg reach frontend
build/microseg reach --all
BEFORE=$(direct_reach frontend)

bold "Applying the shop's policy: microseg policy apply policies/examples"
build/microseg policy apply policies/examples
bold "Blast radius after: the frontend opens checkout only; the rest is behind it"
build/microseg reach frontend
build/microseg reach --all
AFTER=$(direct_reach frontend)
if [[ $BEFORE != 3 || $AFTER != 1 ]]; then
  echo "  !! expected the frontend to open 3 workloads directly before the policy and 1 after (saw $BEFORE, $AFTER)" >&2
  FAILURES=$((FAILURES + 1))
fi
bold "Status"
build/microseg status

# call FROM TO [EXPECT]: a client in FROM's cgroup (FROM=host: this script's
# own cgroup, outside the shop) connects to TO's port; EXPECT (ok|refused) is
# checked, so the demo fails loudly if microseg does not do what it shows. A
# caller's own egress refuses at once (EPERM); a callee's ingress drops the
# SYN (the caller gives up after the 1 s connect timeout).
call() {
  local from="$1" to="$2" expect="${3:-}" out rc why
  local target="TCP:127.0.0.1:${PORT[$to]},connect-timeout=1"
  if [[ $from == host ]]; then
    out=$(socat -T2 - "$target" </dev/null 2>&1) && rc=0 || rc=$?
  else
    out=$(in_cgroup "system.slice/$from.service" socat -T2 - "$target" </dev/null 2>&1) && rc=0 || rc=$?
  fi
  if [[ $rc -eq 0 ]]; then
    printf '  %-9s -> %-9s :%-5s  connected (%s)\n' "$from" "$to" "${PORT[$to]}" "$out"
  else
    why=$(echo "$out" | grep -m1 ' E ' | sed 's/.*: //')
    [[ $why == *"timed out"* ]] && why="$why: dropped by $to's ingress"
    [[ $why == *"not permitted"* ]] && why="$why: refused by $from's egress"
    printf '  %-9s -> %-9s :%-5s  REFUSED: %s\n' "$from" "$to" "${PORT[$to]}" "$why"
  fi
  if [[ -n "$expect" ]] && { [[ $expect == ok && $rc -ne 0 ]] || [[ $expect == refused && $rc -eq 0 ]]; }; then
    echo "  !! expected $expect" >&2
    FAILURES=$((FAILURES + 1))
  fi
}

# traffic MODE: in monitor everything connects; in enforce the lateral
# movement is refused and the legitimate chain still works.
traffic() {
  local lateral=ok
  [[ $1 == enforce ]] && lateral=refused
  call frontend checkout ok
  call checkout payments ok
  call payments postgres ok
  call checkout postgres ok
  echo "  -- an attacker who took over the frontend tries to move sideways:"
  call frontend postgres "$lateral"
  call frontend payments "$lateral"
  echo "  -- a process outside the shop (its egress is nobody's business) goes for the database:"
  call host postgres "$lateral"
  call host frontend ok
}

show_flows() {
  sleep 0.4 # the daemon drains events every 100 ms
  jq -r --arg v "$1" 'select(.verdict == $v) |
      "  \(.verdict)  \(.src.workload) -> \(.dst.workload):\(.dst.port)/\(.protocol)  \(.direction)  rule=\(.rule)"' "$FLOWS" | sort | uniq -c
}

bold "Traffic in monitor mode: everything connects, would-be denials are audited"
traffic monitor
bold "Audited flows (what enforce mode would refuse)"
show_flows audit

bold "Switching to enforce: microseg mode enforce"
build/microseg mode enforce
traffic enforce
bold "Denied flows"
show_flows deny

bold "Counters"
build/microseg status -o json | jq -c '.counters'

if [[ $KEEP -eq 1 ]]; then
  bold "Left running. Try:"
  echo "  export MICROSEG_SOCKET=$SOCK"
  echo "  build/microseg status; build/microseg mode monitor; tail -f $FLOWS"
  echo "Press Ctrl-C (or kill -TERM $$) to clean up."
  while kill -0 "$DAEMON_PID" 2>/dev/null; do sleep 1; done
fi
if ((FAILURES > 0)); then
  echo "demo: $FAILURES connection(s) did not behave as the policy says" >&2
  exit 1
fi
bold "Done"
