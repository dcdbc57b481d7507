# Sourced by scripts/bench.sh (section 1c): an allowed connect4 with the
# grant map (ms_grants) empty and with grants present, side by side in
# rounds. The datapath asks the grants only where the policy found nothing,
# so an allowed flow should cost the same either way. Grants go to other
# ports of w0 (the measured subject: same subject, other keys) and between
# w1 and w2: 8 grants of 256 ports, 4096 kernel entries. Uses bench.sh's
# MSC, MSROOT, PA, STATE, HOOK_ITERS, run_tool, raw, note, set_mode, status.
grants_section() {
  local rounds=$1 round state out ids=() g
  set_mode enforce
  local order
  for ((round = 0; round < rounds; round++)); do
    # Alternate which goes first, so a drift of the machine does not favour one.
    order="empty present"; ((round % 2)) && order="present empty"
    for state in $order; do
      if [[ $state == present ]]; then
        ids=()
        for g in 0 1 2 3; do
          ids+=("$("$MSC" grant --from w0 --to w1 --port "$((20000 + g * 256))-$((20255 + g * 256))/tcp" \
            --for 10m --reason bench -o json | jq -r .id)")
          ids+=("$("$MSC" grant --from w1 --to w2 --port "$((20000 + g * 256))-$((20255 + g * 256))/udp" \
            --for 10m --reason bench -o json | jq -r .id)")
        done
      fi
      out=$(run_tool loop --cgroup "$MSROOT/w0" --kind tcp4 --port "$PA" --iters "$HOOK_ITERS" --stats-pin-dir "$STATE")
      raw "$(jq -c --argjson round "$round" --arg s "$state" --argjson n "$("$MSC" grants -o json | jq '[.grants[] | select(.state=="active")] | length')" \
        '{section:"grants", round:$round, grants:$s, active:$n} + .' <<<"$out")"
      if [[ $state == present ]]; then
        for g in "${ids[@]}"; do "$MSC" revoke "$g" >/dev/null; done
      fi
    done
  done
  note "allowed connect4 ns per run, grant map empty / 8 grants (4096 entries), by round: $(jq -rs \
    '[.[] | select(.section=="grants")] | group_by(.round) | map(sort_by(.grants) | map(.progs.ms_connect4.ns_per_run // 0 | floor | tostring) | join("/")) | join("  ")' "$RAW")"
  note "medians: $(jq -rs '[.[] | select(.section=="grants")] | group_by(.grants) | map("\(.[0].grants) \(map(.progs.ms_connect4.ns_per_run // 0) | sort | .[length / 2 | floor] | floor) ns (active grants \(map(.active) | unique | join(",")))") | join(", ")' "$RAW")"
}
