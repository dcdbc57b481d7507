/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Test-only entry point (never attached): runs the kernel's DNS response
 * parser, dns_parse() of lib/dns.bpf.h, on the UDP payload of a
 * BPF_PROG_TEST_RUN packet (an IPv4 and a UDP header, then the message)
 * and writes what it found to ms_dns_out (bpf/dns_test.h).
 */
#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>

#include "bpf/abi.h"
#include "bpf/dns_test.h"
#include "bpf/lib/dns.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

_Static_assert(MS_DNS_TEST_CHAIN == MS_DNS_MAX_CHAIN, "chain sizes");
_Static_assert(MS_DNS_TEST_ADDRS == MS_DNS_MAX_ADDRS, "address counts");
_Static_assert(MS_DNS_TEST_STARTS == MS_DNS_MAX_STARTS, "label starts");
_Static_assert(sizeof(struct ms_dns_test_addr) == sizeof(struct ms_dns_addr), "address layout");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ms_dns_state);
} ms_dns_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ms_dns_test_result);
} ms_dns_out SEC(".maps");

/* How many addresses a run may bind (the reference's maxAddresses). */
volatile __u8 ms_dns_max_addrs = MS_DNS_MAX_ADDRS;

SEC("cgroup_skb/ingress")
int ms_dns_test(struct __sk_buff *skb)
{
	struct ms_dns_test_result *r;
	struct ms_dns_state *s;
	__u32 zero = 0, len;
	int i;

	s = bpf_map_lookup_elem(&ms_dns_scratch, &zero);
	r = bpf_map_lookup_elem(&ms_dns_out, &zero);
	if (!s || !r)
		return 0;
	len = skb->len > MS_DNS_TEST_OFFSET ? skb->len - MS_DNS_TEST_OFFSET : 0;
	dns_parse(skb, MS_DNS_TEST_OFFSET, len, s, ms_dns_max_addrs);
	r->runs++;
	r->outcome = s->outcome;
	r->id = s->id;
	r->qtype = s->qtype;
	r->records_seen = s->rec;
	r->n_chain = s->n_chain;
	r->n_addrs = s->n_addrs;
	r->dropped = s->dropped;
	for (i = 0; i < MS_DNS_MAX_CHAIN; i++)
		r->chain[i] = i < s->n_chain ? s->chain[i] : 0;
	for (i = 0; i < MS_DNS_MAX_ADDRS; i++)
		__builtin_memcpy(&r->addrs[i], &s->addrs[i], sizeof(r->addrs[i]));
	r->qlen = s->qlen;
	r->n_starts = s->n_starts;
	__builtin_memcpy(r->qtext, s->qtext, sizeof(r->qtext));
	for (i = 0; i < MS_DNS_MAX_STARTS; i++) {
		r->suffix[i] = i < s->n_starts ? dns_suffix_hash(s, i) : 0;
		r->suffix_at[i] = i < s->n_starts ? s->start_at[i] : 0;
	}
	return 1;
}
