# Sourced by scripts/bench.sh (section 1f): what FQDN peers (#27) cost,
# side by side in rounds, w0's policy naming an fqdn peer ("with": its
# identity has MS_IDENT_F_FQDN) and the same policy without that rule
# ("without": the baseline), applied in turn (the order alternates).
#
#   DNS answers (ms_ingress, kernel-accounted ns per answer): w0 queries
#   api.bench.example over UDP (a connected socket: `dns`; and sendto() on
#   an unconnected one, 8 records only: `dns-unconn`) from a responder of
#   microseg-bench on 127.0.0.1:53 (if nothing listens on UDP port 53 here;
#   else on $FQ_U:53 in the netns below), outside the managed tree (`host`),
#   and receives an answer of 1, 8 or 32 A records ($FQ_B, +1, ...: the
#   parser reads the 32, binds 8). "with": every answer is parsed and binds;
#   "without": it is not parsed (the flag is off): the difference is what
#   parsing + binding costs. `dns-unnamed`: 8 records for other.bench.example,
#   a name no policy names: parsed, nothing bound (parse vs bind).
#   connect4 to a remote address (ms_connect4 ns per run, all ms_ programs
#   per connect, wall ns per TCP connect+accept+close): a listener of
#   microseg-bench in the netns $NETNS (veth ${VETH}a/b, a /29 of
#   198.19.0.0/16, in the benchmarking range 198.18.0.0/15), addresses $FQ_U
#   and $FQ_B. unbound: to $FQ_U, allowed by a cidr rule, without and with
#   the fqdn rule (with: the extra binding lookup, a miss); bound: to $FQ_B,
#   which the answers above bound to the name, allowed only by the fqdn rule
#   (its address alone is world, default deny): the binding's hit and the
#   fqdn peer's policy lookups.
#
# The netns and veth are removed at the end (bench.sh's cleanup removes them
# on failure; section 5 makes its own later, under the same names). Uses
# bench.sh's MSC, MSROOT, PA, STATE, WORK, RAW, NETNS, VETH, HOOK_ITERS,
# run_tool, raw, note, set_mode, apply_policy (sourced before microsegd
# starts, for fqdn_resolvers).
#
# Only answers of trusted resolvers bind (microsegd --fqdn-resolvers):
# bench.sh starts microsegd with fqdn_resolvers' list (127.0.0.1 and $FQ_U,
# the two places the responder may be). `dns-untrusted`: the same 8-record
# answer from 127.0.0.2:53 (or $FQ_X:53 in the netns), not in that list:
# not parsed, nothing bound (the resolver check alone).
net_fqdn="198.19.$((($$ / 32) % 256)).$((($$ % 32) * 8))"
FQ_A="${net_fqdn%.*}.$((${net_fqdn##*.} + 1))"   # this side of the veth
FQ_U="${net_fqdn%.*}.$((${net_fqdn##*.} + 2))"   # unbound target (and the netns responder)
FQ_B="${net_fqdn%.*}.$((${net_fqdn##*.} + 3))"   # bound target: the answers' first address
FQ_X="${net_fqdn%.*}.$((${net_fqdn##*.} + 4))"   # the netns's untrusted responder
fqdn_resolvers() { echo "127.0.0.1,$FQ_U"; }
fqdn_section() {
  local rounds=$1 round pol order kind rec target out server server_ns="" untrusted dst
  ip netns add "$NETNS"
  ip link add "${VETH}a" type veth peer name "${VETH}b" netns "$NETNS"
  ip addr add "$FQ_A/29" dev "${VETH}a"
  ip link set "${VETH}a" up
  ip -n "$NETNS" addr add "$FQ_U/29" dev "${VETH}b"
  ip -n "$NETNS" addr add "$FQ_B/29" dev "${VETH}b"
  ip -n "$NETNS" addr add "$FQ_X/29" dev "${VETH}b"
  ip -n "$NETNS" link set "${VETH}b" up
  ip -n "$NETNS" link set lo up
  if ss -Hlun 'sport = :53' | grep -q .; then
    server=$FQ_U untrusted=$FQ_X server_ns="/run/netns/$NETNS"
    note "UDP port 53 is in use here: the DNS responder runs on $FQ_U:53 in $NETNS (answers arrive over the veth)"
  else
    server=127.0.0.1 untrusted=127.0.0.2
    note "DNS responder on 127.0.0.1:53 (loopback; answers from a local socket: the sender is looked up)"
  fi
  local dir="$WORK/fqdn"
  mkdir -p "$dir/with" "$dir/without"
  for pol in with without; do
    {
      cat <<YAML
apiVersion: microseg.dev/v1
kind: Workload
metadata: {name: w0}
spec:
  cgroups: ["w0"]
  labels: {app: w0}
---
apiVersion: microseg.dev/v1
kind: Policy
metadata: {name: fqdn-bench}
spec:
  selector: {identity: w0}
  egress:
    - to: [{reserved: host}, {cidr: $FQ_U/32}, {cidr: $FQ_X/32}]
      ports: [{port: 53, protocol: UDP}]
    - to: [{cidr: $FQ_U/32}]
      ports: [{port: $PA, protocol: TCP}]
YAML
      if [[ $pol == with ]]; then
        cat <<YAML
    - to: [{fqdn: api.bench.example}]
      ports: [{port: $PA, protocol: TCP}]
YAML
      fi
    } >"$dir/$pol/policy.yaml"
  done
  set_mode enforce
  for ((round = 0; round < rounds; round++)); do
    order="without with"; ((round % 2)) && order="with without"
    for pol in $order; do
      apply_policy "$dir/$pol/policy.yaml"
      # DNS first ("with": binds $FQ_B before the bound connects).
      local recs="1 8 32"; ((round % 2)) && recs="32 8 1"
      for rec in $recs; do
        out=$(run_tool fqdn-loop --cgroup "$MSROOT/w0" --kind dns --server "$server" ${server_ns:+--server-netns "$server_ns"} \
          --name api.bench.example --records "$rec" --first-addr "$FQ_B" --iters "$HOOK_ITERS" --stats-pin-dir "$STATE")
        raw "$(jq -c --argjson round "$round" --arg p "$pol" '{section:"fqdn", round:$round, policy:$p, test:"dns"} + .' <<<"$out")"
        [[ $(jq .errors <<<"$out") == 0 ]] || note "!! dns $pol $rec records: $(jq -r '"\(.errors) errors (\(.errno))"' <<<"$out")"
      done
      # A question no policy names (8 records): parsed, nothing bound.
      out=$(run_tool fqdn-loop --cgroup "$MSROOT/w0" --kind dns --server "$server" ${server_ns:+--server-netns "$server_ns"} \
        --name other.bench.example --records 8 --first-addr "$FQ_B" --iters "$HOOK_ITERS" --stats-pin-dir "$STATE")
      raw "$(jq -c --argjson round "$round" --arg p "$pol" '{section:"fqdn", round:$round, policy:$p, test:"dns-unnamed"} + .' <<<"$out")"
      [[ $(jq .errors <<<"$out") == 0 ]] || note "!! dns-unnamed $pol: $(jq -r '"\(.errors) errors (\(.errno))"' <<<"$out")"
      # The same answer from a resolver microsegd does not trust.
      out=$(run_tool fqdn-loop --cgroup "$MSROOT/w0" --kind dns --server "$untrusted" ${server_ns:+--server-netns "$server_ns"} \
        --name api.bench.example --records 8 --first-addr "$FQ_B" --iters "$HOOK_ITERS" --stats-pin-dir "$STATE")
      raw "$(jq -c --argjson round "$round" --arg p "$pol" '{section:"fqdn", round:$round, policy:$p, test:"dns-untrusted"} + .' <<<"$out")"
      [[ $(jq .errors <<<"$out") == 0 ]] || note "!! dns-untrusted $pol: $(jq -r '"\(.errors) errors (\(.errno))"' <<<"$out")"
      out=$(run_tool fqdn-loop --cgroup "$MSROOT/w0" --kind dns-unconn --server "$server" ${server_ns:+--server-netns "$server_ns"} \
        --name api.bench.example --records 8 --first-addr "$FQ_B" --iters "$HOOK_ITERS" --stats-pin-dir "$STATE")
      raw "$(jq -c --argjson round "$round" --arg p "$pol" '{section:"fqdn", round:$round, policy:$p, test:"dns-unconn"} + .' <<<"$out")"
      [[ $(jq .errors <<<"$out") == 0 ]] || note "!! dns-unconn $pol: $(jq -r '"\(.errors) errors (\(.errno))"' <<<"$out")"
      local targets="unbound"; [[ $pol == with ]] && targets="unbound bound"
      ((round % 2)) && [[ $pol == with ]] && targets="bound unbound"
      for target in $targets; do
        dst=$FQ_U; [[ $target == bound ]] && dst=$FQ_B
        out=$(run_tool fqdn-loop --cgroup "$MSROOT/w0" --kind connect --dest "$dst" --port "$PA" \
          --listener-netns "/run/netns/$NETNS" --iters "$HOOK_ITERS" --stats-pin-dir "$STATE")
        raw "$(jq -c --argjson round "$round" --arg p "$pol" --arg t "$target" '{section:"fqdn", round:$round, policy:$p, test:"connect", target:$t} + .' <<<"$out")"
        [[ $(jq .errors <<<"$out") == 0 ]] || note "!! connect $pol $target: $(jq -r '"\(.errors) errors (\(.errno))"' <<<"$out")"
      done
      if ((round == 0)) && [[ $pol == with ]]; then
        note "microseg fqdn after the answers: $("$MSC" fqdn -o json | jq -c '[.bindings[]? | select(.workload=="w0")] | {bound: length, addresses: (map(.address) | sort_by(split(".") | map(tonumber))), first: .[0]}')"
      fi
    done
  done

  # Per answer / connect (iteration): one program's kernel ns, and every ms_ program's.
  local ing='(.iters // 0) as $n | if $n == 0 then 0 else (.progs.ms_ingress.ns // 0) / $n end'
  local c4='(.progs.ms_connect4.ns_per_run // 0)'
  local all='(.iters // 0) as $n | if $n == 0 then 0 else ([.progs | to_entries[] | select(.key | startswith("ms_")) | .value.ns] | add // 0) / $n end'
  local med='sort | .[length / 2 | floor]'
  local sel='[.[] | select(.section=="fqdn")]'
  for rec in 1 8 32; do
    note "dns answer, $rec A record(s), ms_ingress ns per answer, without/with by round: $(jq -rs --argjson k "$rec" \
      "$sel | map(select(.test==\"dns\" and .records==\$k)) | group_by(.round) | map(sort_by(.policy) | reverse | map($ing | floor | tostring) | join(\"/\")) | join(\"  \")" "$RAW")"
  done
  note "dns-unconn (sendto), 8 records, ms_ingress ns per answer, without/with by round: $(jq -rs \
    "$sel | map(select(.test==\"dns-unconn\")) | group_by(.round) | map(sort_by(.policy) | reverse | map($ing | floor | tostring) | join(\"/\")) | join(\"  \")" "$RAW")"
  jq -rs "$sel | map(select(.test | startswith(\"dns\"))) | group_by([.test, .records]) | map(
      (map(select(.policy==\"without\") | $ing) | $med) as \$wo | (map(select(.policy==\"with\") | $ing) | $med) as \$w |
      (group_by(.round) | map((map(select(.policy==\"with\"))[0] | $ing) - (map(select(.policy==\"without\"))[0] | $ing)) | $med) as \$d |
      (map(select(.policy==\"with\")) | map(.progs.ms_ingress.runs / .iters) | $med) as \$runs |
      (group_by(.round) | map((map(select(.policy==\"with\"))[0] | $ing) / (map(select(.policy==\"without\"))[0] | $ing)) | $med) as \$r |
      \"\(.[0].test) \(.[0].records) record(s): ms_ingress per answer without \(\$wo | floor) ns, with \(\$w | floor) ns, difference \(\$d | floor) ns = \(\$r * 10 | floor / 10)x (medians of rounds' differences / ratios; \(\$runs * 100 | floor / 100) runs per answer; wall \(map(select(.policy==\"without\") | .ns_per_op) | $med | floor)/\(map(select(.policy==\"with\") | .ns_per_op) | $med | floor) ns)\") | .[]" "$RAW" |
    while IFS= read -r line; do note "medians: $line"; done
  note "connect4 to a remote address, ms_connect4 ns per run, without-unbound/with-unbound/with-bound by round: $(jq -rs \
    "$sel | map(select(.test==\"connect\")) | group_by(.round) | map(sort_by([(.policy != \"without\"), (.target != \"unbound\")]) | map($c4 | floor | tostring) | join(\"/\")) | join(\"  \")" "$RAW")"
  jq -rs "$sel | map(select(.test==\"connect\")) | group_by([.policy, .target]) | sort_by([(.[0].policy != \"without\"), (.[0].target != \"unbound\")]) | map(
      \"\(.[0].policy) fqdn peer, \(.[0].target) (\(.[0].dest)): connect4 \(map($c4) | $med | floor) ns per run, all microseg programs \(map($all) | $med | floor) ns per connect, wall \(map(.ns_per_op) | $med | floor) ns per connect+accept+close, errors \(map(.errors) | add)\") | .[]" "$RAW" |
    while IFS= read -r line; do note "medians: $line"; done
  note "connect4 per round, with/without (median [min-max] of rounds): unbound $(jq -rs \
    "$sel | map(select(.test==\"connect\")) | group_by(.round) | map((map(select(.policy==\"with\" and .target==\"unbound\"))[0] | $c4) / (map(select(.policy==\"without\"))[0] | $c4)) | \"\(($med) * 1000 | floor / 1000)x [\(min * 100 | floor / 100)-\(max * 100 | floor / 100)]\"" "$RAW"), bound $(jq -rs \
    "$sel | map(select(.test==\"connect\")) | group_by(.round) | map((map(select(.policy==\"with\" and .target==\"bound\"))[0] | $c4) / (map(select(.policy==\"without\"))[0] | $c4)) | \"\(($med) * 1000 | floor / 1000)x [\(min * 100 | floor / 100)-\(max * 100 | floor / 100)]\"" "$RAW"); wall with-bound/without $(jq -rs \
    "$sel | map(select(.test==\"connect\")) | group_by(.round) | map((map(select(.policy==\"with\" and .target==\"bound\"))[0].ns_per_op) / (map(select(.policy==\"without\"))[0].ns_per_op)) | ($med) * 1000 | floor / 1000" "$RAW")x"

  ip netns del "$NETNS" 2>/dev/null || true
  ip link del "${VETH}a" 2>/dev/null || true
}
