/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Test-only entry point (never attached): the datapath's verdict code,
 * policy_verdict() of lib/decide.bpf.h, on one case from ms_verdict_io, run
 * with BPF_PROG_TEST_RUN on the daemon's own maps (the test reuses the
 * pinned maps a BpfDatapath filled). The subject is found as sk_identity()
 * finds a classified cgroup (its entry in the active slot), a remote peer
 * as egress_peer() finds it (the ipcache), so the lookups and their order
 * are the real ones; only the socket is not.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"
#include "bpf/verdict_test.h"
#include "bpf/lib/decide.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ms_verdict_case);
} ms_verdict_io SEC(".maps") MS_PER_RUN;

SEC("cgroup_skb/ingress")
int ms_verdict_test(struct __sk_buff *skb)
{
	const struct ms_cgroup_value *entry;
	struct ms_verdict_case *c;
	struct ms_flow f = {};
	struct ms_gen g;
	__u32 zero = 0;
	__u8 local = 0;

	c = bpf_map_lookup_elem(&ms_verdict_io, &zero);
	if (!c)
		return 0;
	c->runs++;
	if (load_gen(&g)) {
		c->rc = -1;
		return 0;
	}
	entry = bpf_map_lookup_elem(g.cgroups, &c->subject_cgroup);
	if (!entry) {
		c->rc = -2;
		return 0;
	}
	f.subject = entry->identity;
	f.direction = c->direction;
	f.protocol = c->protocol;
	f.dst_port = c->port;
	if (c->by_addr)
		f.peer = egress_peer(skb, g.cgroups, g.ipcache, g.cfg, &c->peer_addr, 0, &c->peer_addr,
				     c->port, c->protocol, &f.dst_cgroup_id, &local);
	else
		f.peer = c->peer;
	policy_verdict(&g, &f, entry);
	c->rc = 0;
	c->subject = f.subject;
	c->resolved_peer = f.peer;
	c->rule_id = f.rule_id;
	c->verdict = f.verdict;
	c->reason = f.reason;
	return 1;
}
