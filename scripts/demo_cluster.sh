#!/usr/bin/env bash
# microseg cluster demo (scripts/demo.sh --cluster): two "hosts" sharing one
# policy and one identity space through a local etcd. Each host is a network
# namespace on a bridge with a cgroup subtree and a microsegd of its own:
#
#   host a (10.66.0.1):  batch, frontend (host netns); checkout in a netns
#                        of its own (10.66.0.11, a container)
#   host b (10.66.0.2):  payments (host netns, :8443)
#
# The policy is pushed once (microseg policy push) and both daemons follow
# it (--policy etcd). checkout may call payments by name, across hosts, with
# no address written anywhere; frontend may not (refused at connect() on a);
# batch may leave a, but payments admits only checkout: b drops its SYN (a
# host-netns service of a arrives at b as node:a).
#
#   scripts/demo.sh --cluster          run it end to end and clean up
#   scripts/demo.sh --cluster --keep   leave it running; Ctrl-C cleans up
#
# Safety: programs attach only to the demo's own cgroups, traffic stays in
# the demo's network namespaces, etcd listens on loopback and a unix socket
# in the demo's temp dir; cleanup ends only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=0
for arg in "$@"; do
  case "$arg" in
    --cluster) ;;
    --keep) KEEP=1 ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done
if [[ $(id -u) -ne 0 ]]; then
  echo "demo: run as root (it loads BPF programs into its own throwaway cgroups)" >&2
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
ID=$$
WORK=$(mktemp -d /tmp/microseg-cluster-demo.XXXXXX)
HUB="msdemo-hub-$ID" NSA="msdemo-a-$ID" NSB="msdemo-b-$ID" NSC="msdemo-ctr-$ID"
declare -A ROOT=([a]="$CG2/microseg-demo-a-$ID" [b]="$CG2/microseg-demo-b-$ID")
declare -A STATE=([a]=/sys/fs/bpf/microseg-demo-a-$ID [b]=/sys/fs/bpf/microseg-demo-b-$ID)
declare -A SOCK=([a]="$WORK/a.sock" [b]="$WORK/b.sock")
declare -A NS=([a]="$NSA" [b]="$NSB")
ETCD_PORT=$((20000 + ID % 20000))
ETCD_UNIX="unix://$WORK/etcd.sock:0"
PIDS=()
ETCD_PID=""
declare -A DAEMON=()

cleanup() {
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  for h in a b; do
    if [[ -n "${DAEMON[$h]:-}" ]]; then
      build/microseg --socket "${SOCK[$h]}" uninstall >/dev/null 2>&1 || kill -TERM "${DAEMON[$h]}" 2>/dev/null
      wait "${DAEMON[$h]}" 2>/dev/null
    fi
    build/microsegd --cleanup --state-dir "${STATE[$h]}" 2>/dev/null
    if [[ -d "${ROOT[$h]}" ]]; then
      echo 1 >"${ROOT[$h]}/cgroup.kill" 2>/dev/null
      sleep 0.2
      find "${ROOT[$h]}" -depth -type d -exec rmdir {} \; 2>/dev/null
    fi
    rm -rf "${STATE[$h]}"
  done
  if [[ -n "$ETCD_PID" ]]; then kill "$ETCD_PID" 2>/dev/null; wait "$ETCD_PID" 2>/dev/null; fi
  for ns in "$NSC" "$NSA" "$NSB" "$HUB"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$WORK"
  echo "demo: cleaned up (etcd, daemons, cgroups, BPF state, netns, processes, temp files)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bold "A local etcd (loopback :$ETCD_PORT and $WORK/etcd.sock)"
(cd "$WORK" && exec /usr/bin/etcd --name demo --data-dir "$WORK/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT,unix://etcd.sock:0" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "demo=http://127.0.0.1:$((ETCD_PORT + 1))" --log-level warn >"$WORK/etcd.log" 2>&1) &
ETCD_PID=$!
for _ in $(seq 100); do [[ -S "$WORK/etcd.sock:0" ]] && break; sleep 0.1; done
[[ -S "$WORK/etcd.sock:0" ]] || { echo "demo: etcd did not start:" >&2; cat "$WORK/etcd.log" >&2; exit 1; }
echo "etcd pid $ETCD_PID"

bold "Two hosts (network namespaces on a bridge)"
ip netns add "$HUB"
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" link set br0 up
link() { # link NS ADDR SUFFIX: a veth from NS to the bridge
  ip netns add "$1"
  ip -n "$1" link set lo up
  ip -n "$HUB" link add "v$3-$ID" type veth peer name eth0 netns "$1"
  ip -n "$HUB" link set "v$3-$ID" master br0 up
  ip -n "$1" addr add "$2/24" dev eth0
  ip -n "$1" link set eth0 up
}
link "$NSA" 10.66.0.1 a
link "$NSB" 10.66.0.2 b
link "$NSC" 10.66.0.11 c
echo "  host a: 10.66.0.1 (netns $NSA), checkout's own netns 10.66.0.11 ($NSC)"
echo "  host b: 10.66.0.2 (netns $NSB)"

# run HOST CGROUP NETNS CMD...: CMD in host's cgroup CGROUP and netns NETNS
# (nsenter: the network namespace only; cgroupfs and bpffs stay as they are).
run() {
  local host="$1" cg="$2" ns="$3"; shift 3
  mkdir -p "${ROOT[$host]}/$cg"
  bash -c 'echo $$ > "$0/cgroup.procs" && exec nsenter --net=/run/netns/"$1" "${@:2}"' \
    "${ROOT[$host]}/$cg" "$ns" "$@"
}

POLICY="$WORK/policy"
mkdir -p "$POLICY"
for w in checkout batch frontend payments; do
  cat >>"$POLICY/workloads.yaml" <<EOF
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: $w}
spec:
  cgroups: ["system.slice/$w.service"]
  labels: {app: $w}
---
EOF
done
cat >"$POLICY/payments.yaml" <<'EOF'
# checkout and batch may call payments on 8443; payments admits checkout.
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: callers-of-payments}
spec:
  selector: {matchExpressions: [{key: app, operator: In, values: [checkout, batch]}]}
  egress:
    - to: [{identity: payments}]
      ports: [{port: 8443, protocol: TCP}]
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: payments-in}
spec:
  selector: {identity: payments}
  ingress:
    - from: [{identity: checkout}]
      ports: [{port: 8443, protocol: TCP}]
EOF

bold "microseg policy push $POLICY (validated, then one etcd transaction)"
build/microseg policy push "$POLICY" --etcd-endpoints "http://127.0.0.1:$ETCD_PORT"

for h in a b; do
  mkdir -p "${ROOT[$h]}"
  bold "microsegd on host $h (--policy etcd, enforce)"
  nsenter --net=/run/netns/"${NS[$h]}" build/microsegd --cgroup-root "${ROOT[$h]}" --policy etcd --mode enforce \
    --etcd-endpoints "$ETCD_UNIX" --node-name "$h" --data-dir "$WORK/data-$h" \
    --socket "${SOCK[$h]}" --state-dir "${STATE[$h]}" --flow-log "$WORK/flows-$h.jsonl" 2>"$WORK/microsegd-$h.log" &
  DAEMON[$h]=$!
  for _ in $(seq 100); do build/microseg --socket "${SOCK[$h]}" status >/dev/null 2>&1 && break; sleep 0.1; done
  build/microseg --socket "${SOCK[$h]}" status >/dev/null || { cat "$WORK/microsegd-$h.log" >&2; exit 1; }
  echo "  microsegd pid ${DAEMON[$h]}, socket ${SOCK[$h]}"
done

bold "Services"
run b system.slice/payments.service "$NSB" socat TCP-LISTEN:8443,fork,reuseaddr "SYSTEM:echo payments answers" \
  </dev/null >/dev/null 2>&1 &
PIDS+=($!)
run a system.slice/checkout.service "$NSC" sleep infinity </dev/null >/dev/null 2>&1 &
PIDS+=($!)
echo "  payments on host b :8443 (host netns); checkout on host a in its own netns"

bold "Waiting for the hosts to know each other's endpoints"
for _ in $(seq 150); do
  known_a=$(build/microseg --socket "${SOCK[a]}" status -o json |
    jq '[.remote_workloads[] | select(.workload == "payments") | .listeners[]] | length')
  known_b=$(build/microseg --socket "${SOCK[b]}" status -o json |
    jq '[.remote_workloads[] | select(.workload == "checkout") | .addresses[]] | length')
  [[ $known_a -gt 0 && $known_b -gt 0 ]] && break
  sleep 0.2
done
build/microseg --socket "${SOCK[a]}" cluster status

FAILURES=0
# call FROM NETNS EXPECT: FROM (a workload of host a) connects to payments.
call() {
  local from="$1" ns="$2" expect="$3" out rc why
  out=$(run a "system.slice/$from.service" "$ns" socat -T2 - "TCP:10.66.0.2:8443,connect-timeout=1" </dev/null 2>&1) &&
    rc=0 || rc=$?
  if [[ $rc -eq 0 ]]; then
    printf '  %-9s (host a) -> payments (host b)  connected (%s)\n' "$from" "$out"
  else
    why=$(echo "$out" | grep -m1 ' E ' | sed 's/.*: //')
    [[ $why == *"timed out"* ]] && why="$why: dropped by host b (payments admits checkout only)"
    [[ $why == *"not permitted"* ]] && why="$why: refused at connect() on host a"
    printf '  %-9s (host a) -> payments (host b)  REFUSED: %s\n' "$from" "$why"
  fi
  if { [[ $expect == ok && $rc -ne 0 ]] || [[ $expect == refused && $rc -eq 0 ]]; }; then
    echo "  !! expected $expect" >&2
    FAILURES=$((FAILURES + 1))
  fi
}

bold "Traffic across hosts"
call checkout "$NSC" ok
call frontend "$NSA" refused
call batch "$NSA" refused
sleep 0.4
bold "Host b's denials (how b named the caller)"
jq -r 'select(.verdict == "deny") | "  \(.direction) \(.src.workload) -> \(.dst.workload):\(.dst.port)"' \
  "$WORK/flows-b.jsonl" | sort | uniq -c
bold "Host a's denials"
jq -r 'select(.verdict == "deny") | "  \(.direction) \(.src.workload) -> \(.dst.workload):\(.dst.port)"' \
  "$WORK/flows-a.jsonl" | sort | uniq -c

if [[ $KEEP -eq 1 ]]; then
  bold "Left running. Try:"
  echo "  build/microseg --socket ${SOCK[a]} cluster status"
  echo "  build/microseg --socket ${SOCK[b]} status"
  echo "Press Ctrl-C (or kill -TERM $$) to clean up."
  while kill -0 "${DAEMON[a]}" 2>/dev/null; do sleep 1; done
fi
if ((FAILURES > 0)); then
  echo "demo: $FAILURES connection(s) did not behave as the policy says" >&2
  exit 1
fi
bold "Done"
