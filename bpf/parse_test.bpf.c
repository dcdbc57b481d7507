/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Test-only entry point (never attached): runs the datapath's inbound
 * packet parser, parse_pkt() of lib/packet.bpf.h, on a BPF_PROG_TEST_RUN
 * packet and writes what it found to ms_parse_out. ms_ingress itself cannot
 * show it: a test run's skb->sk is a dummy socket of no protocol, which the
 * datapath does not police, so it returns before parsing.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"
#include "bpf/parse_test.h"
#include "bpf/lib/maps.bpf.h"
#include "bpf/lib/kernel.bpf.h"
#include "bpf/lib/addr.bpf.h"
#include "bpf/lib/events.bpf.h"
#include "bpf/lib/identity.bpf.h"
#include "bpf/lib/packet.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ms_parse_result);
} ms_parse_out SEC(".maps");

SEC("cgroup_skb/ingress")
int ms_parse_test(struct __sk_buff *skb)
{
	struct ms_parse_result *r;
	struct ms_pkt p = {};
	__u32 zero = 0;
	int rc = parse_pkt(skb, &p);

	r = bpf_map_lookup_elem(&ms_parse_out, &zero);
	if (!r)
		return 0;
	r->runs++;
	r->rc = rc;
	r->src = p.src;
	r->dst = p.dst;
	r->sport = p.sport;
	r->dport = p.dport;
	r->proto = p.proto;
	r->tcp_flags = p.tcp_flags;
	r->v4 = p.v4;
	return 1;
}
