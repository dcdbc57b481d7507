# Sourced by scripts/bench.sh (section 1e): what stamping connections' ages
# costs (bpf/microseg.bpf.c: ms_established, a sockops program writing the
# establishment time into each TCP socket's storage, both ends), side by
# side in rounds: the allowed TCP connect+accept+close loop of w0 with the
# stamp off (the daemon's default: nothing can be revoked) and on (the
# daemon attaches it while revocation may end connections: here a grant
# between two other workloads is active). Per connection: wall time, and
# the kernel-accounted time of every microseg program. Uses bench.sh's MSC,
# MSROOT, PA, STATE, HOOK_ITERS, RAW, run_tool, raw, note, set_mode.
ages_section() {
  local rounds=$1 round state order out id=""
  set_mode enforce
  for ((round = 0; round < rounds; round++)); do
    # Alternate which goes first, so a drift of the machine favours neither.
    order="off on"; ((round % 2)) && order="on off"
    for state in $order; do
      if [[ $state == on ]]; then
        id=$("$MSC" grant --from w1 --to w2 --port 9/tcp --for 10m --reason bench -o json | jq -r .id)
      fi
      out=$(run_tool loop --cgroup "$MSROOT/w0" --kind tcp4 --port "$PA" --iters "$HOOK_ITERS" --stats-pin-dir "$STATE")
      raw "$(jq -c --argjson round "$round" --arg s "$state" '{section:"ages", round:$round, ages:$s} + .' <<<"$out")"
      if [[ $state == on ]]; then
        "$MSC" revoke "$id" >/dev/null
      fi
    done
  done
  # Per connection (iteration): every ms_ program's kernel time, and ms_established's.
  local per='(.iters // 0) as $n | if $n == 0 then 0 else ([.progs | to_entries[] | select(.key | startswith("ms_")) | .value.ns] | add // 0) / $n end'
  local est='(.iters // 0) as $n | if $n == 0 then 0 else (.progs.ms_established.ns // 0) / $n end'
  local runs='(.iters // 0) as $n | if $n == 0 then 0 else (.progs.ms_established.runs // 0) / $n end'
  note "tcp connect+accept+close, ages off / on, by round: wall $(jq -rs \
    '[.[] | select(.section=="ages")] | group_by(.round) | map(sort_by(.ages) | map(.ns_per_op | floor | tostring) | join("/")) | join("  ")' "$RAW") ns"
  note "kernel-accounted microseg ns per connection, off / on, by round: $(jq -rs \
    "[.[] | select(.section==\"ages\")] | group_by(.round) | map(sort_by(.ages) | map($per | floor | tostring) | join(\"/\")) | join(\"  \")" "$RAW")"
  note "medians: $(jq -rs "[.[] | select(.section==\"ages\")] | group_by(.ages) | map(\"\(.[0].ages): wall \(map(.ns_per_op) | sort | .[length / 2 | floor] | floor) ns, kernel \(map($per) | sort | .[length / 2 | floor] | floor) ns, ms_established \(map($est) | sort | .[length / 2 | floor] | floor) ns in \(map($runs) | sort | .[length / 2 | floor] * 10 | floor / 10) runs\") | join(\"; \")" "$RAW") per connection"
  note "wall on/off: $(jq -rs '[.[] | select(.section=="ages")] | group_by(.round) | map((map(select(.ages=="on"))[0].ns_per_op) / (map(select(.ages=="off"))[0].ns_per_op)) | sort | .[length / 2 | floor] * 1000 | floor / 1000' "$RAW")x (median of rounds)"
}
