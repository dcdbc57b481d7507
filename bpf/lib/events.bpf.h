/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Counters and verdict events.
 *
 * Events are submitted WITHOUT waking the reader (a wakeup per event costs
 * ~18 us per connect); the daemon drains the ring on a short timer. Only
 * when the ring is more than a quarter full do we force a wakeup, so a flood
 * is drained before it overflows. How full it is is asked every
 * MS_EVENT_QUERY_EVERY events, not per event (a helper call: ~100 ns where
 * every kernel function return is costly, e.g. AMD's Safe-RET mitigation);
 * a flood fills at most that many events more per CPU before the wakeup. A
 * full ring drops the event and counts it in MS_CTR_EVENTS_LOST: loss is
 * never silent.
 */
#ifndef MICROSEG_BPF_LIB_EVENTS_H
#define MICROSEG_BPF_LIB_EVENTS_H

#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>

#include "bpf/abi.h"
#include "bpf/lib/maps.bpf.h"

static __always_inline void count(__u32 counter)
{
	__u64 *c = bpf_map_lookup_elem(&ms_counters, &counter);

	if (c)
		*c += 1; /* per-CPU slot: no atomics needed */
}

static __always_inline void count_rule(__u32 rule_id)
{
	__u64 *c = bpf_map_lookup_elem(&ms_rule_hits, &rule_id);

	if (c)
		*c += 1;
}

/* A flow being judged, oriented like the event (src opened it to dst). */
struct ms_flow {
	__u64 src_cgroup_id;
	__u64 dst_cgroup_id;
	__u64 generation;
	struct ms_addr src_addr;
	struct ms_addr dst_addr;
	__u32 subject;        /* identity of the judged socket */
	__u32 peer;           /* identity of the other end */
	__u32 rule_id;
	__be16 src_port;
	__be16 dst_port;      /* the policy port in both directions */
	__u8 protocol;
	__u8 direction;       /* egress: subject = src; ingress: subject = dst */
	__u8 hook;
	__u8 verdict;
	__u8 reason;
	__u8 peer_via;        /* enum ms_peer_via */
	__u8 in_edge;         /* counted in ms_edges (ms_event.in_edge) */
	/* egress: the names the destination is bound to for the subject
	 * (lib/fqdn.bpf.h), NULL if none; the one that decided, if one did
	 * (ms_event.fqdn_name) */
	struct ms_fqdn_binding_value *fqdn;
	__u64 fqdn_name;
};

#define MS_EVENT_QUERY_EVERY 16

/* Events emitted, to pace the fill queries. Shared by every CPU without
 * atomics: an increment lost to a race only moves a query by one event. */
__u32 ms_events_emitted = 0;

static __always_inline void emit_event(const struct ms_flow *f)
{
	struct ms_event *e;
	__u64 flags = BPF_RB_NO_WAKEUP;
	bool egress = f->direction == MS_DIR_EGRESS;

	if ((ms_events_emitted++ % MS_EVENT_QUERY_EVERY) == 0 &&
	    bpf_ringbuf_query(&ms_events, BPF_RB_AVAIL_DATA) > ms_ringbuf_bytes / 4)
		flags = BPF_RB_FORCE_WAKEUP;

	e = bpf_ringbuf_reserve(&ms_events, sizeof(*e), 0);
	if (!e) {
		count(MS_CTR_EVENTS_LOST);
		return;
	}
	/* The precise clock, unlike UDP exchanges (decide.bpf.h): events are
	 * read next to packet captures and other logs. It is the largest part
	 * of an event's cost on a VM with a paravirtual clock (~140 ns). */
	e->timestamp_ns = bpf_ktime_get_ns();
	e->src_cgroup_id = f->src_cgroup_id;
	e->dst_cgroup_id = f->dst_cgroup_id;
	e->generation = f->generation;
	e->src_identity = egress ? f->subject : f->peer;
	e->dst_identity = egress ? f->peer : f->subject;
	e->rule_id = f->rule_id;
	e->src_addr = f->src_addr;
	e->dst_addr = f->dst_addr;
	e->src_port = f->src_port;
	e->dst_port = f->dst_port;
	e->protocol = f->protocol;
	e->verdict = f->verdict;
	e->direction = f->direction;
	e->hook = f->hook;
	e->reason = f->reason;
	e->peer_via = f->peer_via;
	e->in_edge = f->in_edge;
	e->fqdn_name = f->fqdn_name;
	__builtin_memset(e->_pad0, 0, sizeof(e->_pad0));
	if (egress) {
		/* process context: the caller */
		e->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
	} else {
		/* softirq: "current" is whoever was interrupted */
		e->pid = 0;
		__builtin_memset(e->comm, 0, sizeof(e->comm));
	}
	bpf_ringbuf_submit(e, flags);
}

#endif /* MICROSEG_BPF_LIB_EVENTS_H */
