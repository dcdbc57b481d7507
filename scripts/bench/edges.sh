# Sourced by scripts/bench.sh (section 1d): the cost of the observed-edge
# update (bpf/abi.h: ms_edges), side by side in rounds:
#   enforce          allowed connect4, edges on (what runs)
#   enforce_noedges  allowed connect4, the edge update skipped
#   monitor          every connect4 audited, edges on: a count, an event a second
#   monitor_noedges  every connect4 audited, an event each (as before edges)
# The edge update is skipped by MS_CONFIG_F_BENCH_NO_EDGES, set in the pinned
# ms_config with bpftool (the daemon never sets it; `microseg mode` rewrites
# the flags, so it is set after the mode). Targets: enforce <= 1.10x
# enforce_noedges; monitor <= 1.25x enforce. Uses bench.sh's MSROOT, PA, PD,
# STATE, HOOK_ITERS, RAW, run_tool, raw, note, set_mode.

# Sets (1) or clears (0) MS_CONFIG_F_BENCH_NO_EDGES (bit 1 of ms_config.flags,
# byte 16 of the value) in the pinned ms_config.
edges_flag() {
  local pin value byte
  pin=$(ls -d "$STATE"/abi-*/ms_config | head -1)
  value=$(bpftool -j map lookup pinned "$pin" key 0 0 0 0 | jq -r '.value | map(ltrimstr("0x")) | join(" ")')
  read -ra bytes <<<"$value"
  byte=$((16#${bytes[16]}))
  if (($1)); then byte=$((byte | 2)); else byte=$((byte & ~2)); fi
  bytes[16]=$(printf '%02x' "$byte")
  bpftool map update pinned "$pin" key 0 0 0 0 value hex "${bytes[@]}"
}

edges_section() {
  local rounds=$1 round variant order out mode port noedges
  for ((round = 0; round < rounds; round++)); do
    # Rotate which goes first, so a drift of the machine favours none.
    order="enforce enforce_noedges monitor monitor_noedges"
    ((round % 2)) && order="monitor_noedges monitor enforce_noedges enforce"
    for variant in $order; do
      mode=${variant%%_*}
      noedges=0; [[ $variant == *_noedges ]] && noedges=1
      port=$PA; [[ $mode == monitor ]] && port=$PD
      set_mode "$mode"
      edges_flag "$noedges"
      out=$(run_tool loop --cgroup "$MSROOT/w0" --kind tcp4 --port "$port" --iters "$HOOK_ITERS" --stats-pin-dir "$STATE")
      raw "$(jq -c --argjson round "$round" --arg v "$variant" '{section:"edges", round:$round, variant:$v} + .' <<<"$out")"
    done
  done
  edges_flag 0
  set_mode enforce
  local med='def med: sort | .[length / 2 | floor]; [.[] | select(.section=="edges")] | group_by(.variant)
    | map({key: .[0].variant, value: (map(.progs.ms_connect4.ns_per_run // 0) | med)}) | from_entries'
  note "connect4 ns per run by round: $(jq -rs '[.[] | select(.section=="edges")] | group_by(.round)
    | map(map("\(.variant)=\(.progs.ms_connect4.ns_per_run // 0 | floor)") | join(" ")) | join("  |  ")' "$RAW")"
  note "medians: $(jq -rs "$med"' | to_entries | map("\(.key) \(.value | floor) ns") | join(", ")' "$RAW")"
  # Each ratio both of the medians and as the median of the rounds' ratios
  # (a round's variants run seconds apart: the drift of this VM cancels).
  local rounds_ratio='def med: sort | .[length / 2 | floor]; [.[] | select(.section=="edges")] | group_by(.round)
    | map(map({key: .variant, value: (.progs.ms_connect4.ns_per_run // 0)}) | from_entries)'
  note "edge update on an allowed connect4: $(jq -rs "$med"' | "\(.enforce / .enforce_noedges * 100 | round / 100)x"' "$RAW") of the medians, $(jq -rs "$rounds_ratio"' | map(.enforce / .enforce_noedges) | med | "\(. * 100 | round / 100)x"' "$RAW") by round (target <= 1.10x)"
  note "monitor / enforce per connect4: $(jq -rs "$med"' | "\(.monitor / .enforce * 100 | round / 100)x"' "$RAW") of the medians, $(jq -rs "$rounds_ratio"' | map(.monitor / .enforce) | med | "\(. * 100 | round / 100)x"' "$RAW") by round (target <= 1.25x); before edges (an event per audit): $(jq -rs "$rounds_ratio"' | map(.monitor_noedges / .enforce_noedges) | med | "\(. * 100 | round / 100)x"' "$RAW") by round"
}
