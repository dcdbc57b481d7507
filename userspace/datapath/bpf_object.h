// What the BPF object declares, read from the object itself rather than
// restated here: which of its maps are the daemon's pinned state, which
// programs attach to the managed root, how an inner map of a slot is made.
// A map or program added to bpf/ is pinned, adopted, attached and cleaned up
// with no edit on this side.
#pragma once

#include <bpf/libbpf.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace microseg::datapath {

// How an inner map of a slot is made: the `__array(values, ...)` of its
// outer ARRAY_OF_MAPS (bpf/lib/maps.bpf.h).
struct InnerSpec {
  bpf_map_type type = BPF_MAP_TYPE_UNSPEC;
  std::string name;  // the outer map's name + "_in" (the kernel keeps 15 characters)
  uint32_t keySize = 0, valueSize = 0, maxEntries = 0, flags = 0;
};
Result<InnerSpec> innerSpecOf(bpf_map* outer);

// The maps of the object that hold state a restarted daemon adopts: every
// map but libbpf's internal ones (.rodata, .bss) and those tagged
// MS_PER_RUN in bpf/lib/maps.bpf.h (a BTF decl tag on the map's variable).
std::vector<bpf_map*> pinnedMaps(bpf_object* obj);
// Every program of the object: each one attaches to the managed root,
// the enforcing ones for as long as microseg is installed, the others
// (attachedOnDemand) only while a feature needs them.
std::vector<bpf_program*> programs(bpf_object* obj);
// The sockops programs run at every sockops point of every TCP socket of
// the tree, for features not every node uses: ms_sockops writes the wire
// identity on SYNs (bpf/lib/wire.bpf.h), attached while this node signs
// (BpfDatapath::setWireKeys); ms_established stamps connections' ages,
// attached while revocation may end some (setConnectionAges). A node that
// uses neither pays nothing for them.
bool attachedOnDemand(const bpf_program* prog);
// Where a program's link is pinned in the pin dir.
std::string linkPinName(const bpf_program* prog);

}  // namespace microseg::datapath
