/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * FQDN peers (#27; abi.h: ms_fqdn_names): the DNS answers a workload
 * receives bind their addresses to the name's fqdn peer, for that workload
 * only (fqdn_learn, at ingress, before the workload can read the answer);
 * its egress to a bound address is judged as that peer too (fqdn_bound,
 * fqdn_verdict in decide.bpf.h).
 */
#ifndef MICROSEG_BPF_LIB_FQDN_H
#define MICROSEG_BPF_LIB_FQDN_H

#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>

#include "bpf/abi.h"
#include "bpf/lib/dns.bpf.h"
#include "bpf/lib/kernel.bpf.h"
#include "bpf/lib/maps.bpf.h"
#include "bpf/lib/packet.bpf.h"

#define MS_NS_PER_S 1000000000ULL

/* The wildcard suffix search and the text comparison run as bpf_loop
 * callbacks: unrolled, each exit of one loop would have the verifier walk
 * the rest of the function again. */
struct fqdn_search {
	struct ms_dns_state *s;
	struct ms_fqdn_name_value *v;
	__u32 found;           /* suffix: index of the first label start that hit */
	__u32 start;           /* compare: where the entry's text starts */
	__u32 equal;
	__u32 _pad0;
};

static long fqdn_suffix_step(__u64 i, void *ctx)
{
	struct fqdn_search *c = ctx;
	struct ms_dns_state *s = c->s;

	if (i >= s->n_starts || s->start_at[i & (MS_DNS_MAX_STARTS - 1)] >= s->qlen)
		return 1;
	s->name_key.hash = dns_suffix_hash(s, i);
	s->name_key.kind = MS_FQDN_WILDCARD;
	if (bpf_map_lookup_elem(&ms_fqdn_names, &s->name_key)) {
		c->found = i;
		return 1;
	}
	return 0;
}

/* The pattern the question of `s` falls under: its exact name, else the
 * longest suffix a wildcard names; `*start` is where the entry's text
 * starts in the question. By hash only: see fqdn_text_equal(). */
static __always_inline struct ms_fqdn_name_value *fqdn_match(struct fqdn_search *c, struct ms_dns_state *s,
							       __u32 *start)
{
	struct ms_fqdn_name_key *key = &s->name_key;
	struct ms_fqdn_name_value *v;

	__builtin_memset(key, 0, sizeof(*key));
	key->hash = s->chain[0];
	key->kind = MS_FQDN_EXACT;
	v = bpf_map_lookup_elem(&ms_fqdn_names, key);
	if (v) {
		*start = 0;
		return v;
	}
	c->s = s;
	c->found = MS_DNS_MAX_STARTS;
	bpf_loop(MS_DNS_MAX_STARTS, fqdn_suffix_step, c, 0);
	if (c->found >= MS_DNS_MAX_STARTS)
		return NULL;
	key->hash = dns_suffix_hash(s, c->found);
	key->kind = MS_FQDN_WILDCARD;
	*start = s->start_at[c->found & (MS_DNS_MAX_STARTS - 1)];
	return bpf_map_lookup_elem(&ms_fqdn_names, key);
}

static long fqdn_compare_step(__u64 i, void *ctx)
{
	struct fqdn_search *c = ctx;

	if (i >= c->v->len)
		return 1;
	if (c->s->qtext[(c->start + i) & (MS_FQDN_TEXT - 1)] != c->v->text[i & (MS_FQDN_TEXT - 1)]) {
		c->equal = 0;
		return 1;
	}
	return 0;
}

/* The entry's text is the question's from `start` on: a crafted name whose
 * hash collides with a policy's binds nothing. */
static __always_inline bool fqdn_text_equal(struct fqdn_search *c, struct ms_dns_state *s, __u32 start,
					    struct ms_fqdn_name_value *v)
{
	if (start > s->qlen || v->len != s->qlen - start)
		return false;
	c->s = s;
	c->v = v;
	c->start = start;
	c->equal = 1;
	bpf_loop(MS_FQDN_TEXT, fqdn_compare_step, c, 0);
	return c->equal;
}

/* Binding the answer's addresses, one a step (a bpf_loop callback). */
struct fqdn_bind {
	struct ms_dns_state *s;
	__u64 now;
	__u32 peer;
	__u32 min_ttl;
	__u32 max_ttl;
	__u32 _pad0;
};

/* The slot of `v` a binding to `peer` goes in: its own, else an empty or
 * expired one, else the one that expires first. */
static __always_inline __u32 fqdn_slot(const struct ms_fqdn_binding_value *v, __u32 peer, __u64 now)
{
	__u64 first = ~0ULL;
	__u32 free = MS_FQDN_SLOTS, soonest = 0;

	for (__u32 k = 0; k < MS_FQDN_SLOTS; k++) {
		if (v->slot[k].peer == peer)
			return k;
		if (free == MS_FQDN_SLOTS && (v->slot[k].peer == 0 || v->slot[k].expires_ns <= now))
			free = k;
		if (v->slot[k].expires_ns < first) {
			first = v->slot[k].expires_ns;
			soonest = k;
		}
	}
	return free < MS_FQDN_SLOTS ? free : soonest;
}

static long fqdn_bind_step(__u64 i, void *arg)
{
	struct fqdn_bind *b = arg;
	struct ms_dns_state *s = b->s;
	struct ms_fqdn_binding_value *v;
	struct ms_fqdn_bound *slot;
	__u32 k = i & (MS_DNS_MAX_ADDRS - 1), ttl;

	if (k >= s->n_addrs)
		return 1;
	ttl = s->addrs[k].ttl;
	if (ttl < b->min_ttl)
		ttl = b->min_ttl;
	if (ttl > b->max_ttl)
		ttl = b->max_ttl;
	s->bind_key.addr = s->addrs[k].addr;
	v = bpf_map_lookup_elem(&ms_fqdn_bindings, &s->bind_key);
	if (v) {
		/* In place: another CPU's answer for the same address at the
		 * same moment may take the same slot (the next answer binds
		 * again). */
		slot = &v->slot[fqdn_slot(v, b->peer, b->now) & (MS_FQDN_SLOTS - 1)];
	} else {
		__builtin_memset(&s->bind_value, 0, sizeof(s->bind_value));
		slot = &s->bind_value.slot[0];
	}
	slot->expires_ns = b->now + ttl * MS_NS_PER_S;
	slot->name = s->chain[0];
	slot->ttl_s = ttl;
	slot->peer = b->peer;
	if (!v) {
		if (bpf_map_update_elem(&ms_fqdn_bindings, &s->bind_key, &s->bind_value, BPF_NOEXIST) != 0)
			return 0;
		count(MS_CTR_FQDN_ENTRIES);
	}
	count(MS_CTR_FQDN_BOUND);
	return 0;
}

/* A UDP DNS answer (source port 53; its message at `off` of the packet)
 * to a query of the socket of workload `subject`, whose policy names fqdn
 * peers: bind what it says. The datagram itself passes or not as it would
 * without this. A global function: the verifier checks it once, not at
 * each of its callers (its loops are long). Returns 0. */
__noinline int fqdn_learn(struct __sk_buff *skb, __u32 off, __u32 subject)
{
	struct fqdn_search c = {};
	struct fqdn_bind b = {};
	struct ms_fqdn_name_value *v;
	struct ms_dns_state *s;
	struct ms_config *cfg;
	__u32 zero = 0, start = 0;

	if (!skb)
		return 0;
	s = bpf_map_lookup_elem(&ms_dns_scratch, &zero);
	cfg = bpf_map_lookup_elem(&ms_config, &zero);
	if (!s || !cfg)
		return 0;
	if (skb->len <= off) {
		count(MS_CTR_FQDN_MALFORMED);
		return 0;
	}
	dns_parse(skb, off, skb->len - off, s, MS_DNS_MAX_ADDRS);
	if (s->outcome != MS_DNS_BOUND) {
		if (s->outcome != MS_DNS_REFUSED) /* an error answer (NXDOMAIN, ...) is no fault */
			count(MS_CTR_FQDN_MALFORMED);
		return 0;
	}
	if (s->n_addrs == 0)
		return 0;
	v = fqdn_match(&c, s, &start);
	if (!v || !fqdn_text_equal(&c, s, start, v)) {
		count(MS_CTR_FQDN_UNNAMED);
		return 0;
	}
	b.s = s;
	b.now = bpf_ktime_get_coarse_ns();
	b.peer = v->peer;
	b.min_ttl = cfg->fqdn_min_ttl_s;
	b.max_ttl = cfg->fqdn_max_ttl_s;
	__builtin_memset(&s->bind_key, 0, sizeof(s->bind_key));
	s->bind_key.subject = subject;
	bpf_loop(MS_DNS_MAX_ADDRS, fqdn_bind_step, &b, 0);
	bpf_map_update_elem(&ms_fqdn_texts, &s->chain[0], s->qtext, BPF_ANY);
	return 0;
}

/* An egress flow's destination bound by names the subject resolved:
 * f->fqdn (NULL if none; decide.bpf.h's fqdn_verdict() skips expired
 * slots). */
static __always_inline void fqdn_bound(struct ms_flow *f)
{
	struct ms_fqdn_binding_key key = {};

	key.subject = f->subject;
	key.addr = f->dst_addr;
	f->fqdn = bpf_map_lookup_elem(&ms_fqdn_bindings, &key);
}

#endif /* MICROSEG_BPF_LIB_FQDN_H */
