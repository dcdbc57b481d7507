/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Observed edges (abi.h: ms_edges): every judged flow counts in the entry of
 * what decided it, and asks whether it should be an event.
 *
 * One entry shared by every CPU, count added atomically (a lock-prefixed add
 * on x86): a per-CPU value would make every read in the daemon sum
 * nr_cpus copies and the "new edge" test per CPU (an event per CPU per
 * edge). The times are the daemon's coarse clock (below) and written only
 * when they moved, so a flood on one edge writes its cache line once per
 * 100 ms besides the add.
 */
#ifndef MICROSEG_BPF_LIB_EDGES_H
#define MICROSEG_BPF_LIB_EDGES_H

#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>

#include "bpf/abi.h"
#include "bpf/lib/addr.bpf.h"
#include "bpf/lib/events.bpf.h"
#include "bpf/lib/maps.bpf.h"

/* The edges' clock: CLOCK_MONOTONIC_COARSE as the daemon writes it on its
 * 100 ms tick (datapath refreshClock(), through the skeleton's mapping of
 * .bss): a load instead of a helper call, which costs ~100 ns on a CPU
 * whose every return is mitigated (Safe-RET). 100 ms is coarse enough for
 * first/last seen and the event interval. While the daemon is away it
 * stands still (the times of edges then say when it went; counts stay
 * exact). 0 (never written): the kernel's own coarse clock. */
__u64 ms_edge_clock_ns = 0;

enum {
	MS_EDGE_QUIET = 0, /* counted; its event is not due */
	MS_EDGE_DUE = 1,   /* counted; its last event is older than the interval,
			      or a denial/audit names another address */
	MS_EDGE_NEW = 2,   /* its first flow */
	MS_EDGE_FULL = 3,  /* a new edge the full map had no room for
			      (MS_CTR_EDGES_FULL): the event is its only count */
};

/* Adds the flow to its edge; MS_EDGE_* says whether it should be an event. */
static __always_inline int edge_note(const struct ms_flow *f)
{
	struct ms_edge_key key = {};
	struct ms_edge_value nv = {};
	struct ms_edge_value *v;
	const struct ms_addr *addr;
	__u64 now = ms_edge_clock_ns, last;
	const __u64 *a, *b;
	long err;

	if (ms_unlikely(!now))
		now = bpf_ktime_get_coarse_ns();

	key.subject = f->subject;
	key.peer = f->peer;
	key.rule_id = f->rule_id;
	key.port = f->dst_port;
	key.direction = f->direction;
	key.protocol = f->protocol;
	key.verdict = f->verdict;
	key.reason = f->reason;
	key.peer_via = f->peer_via;
	addr = f->direction == MS_DIR_EGRESS ? &f->dst_addr : &f->src_addr;
	v = bpf_map_lookup_elem(&ms_edges, &key);
	if (ms_unlikely(!v)) {
		nv.count = 1;
		nv.first_ns = now;
		nv.last_ns = now;
		nv.event_ns = now;
		nv.addr = *addr;
		err = bpf_map_update_elem(&ms_edges, &key, &nv, BPF_NOEXIST);
		if (err == 0)
			return MS_EDGE_NEW;
		/* Another CPU inserted it meanwhile: count in its entry. */
		v = bpf_map_lookup_elem(&ms_edges, &key);
		if (!v) {
			count(MS_CTR_EDGES_FULL);
			return MS_EDGE_FULL;
		}
	}
	__sync_fetch_and_add(&v->count, 1);
	if (v->last_ns != now)
		v->last_ns = now;
	if (f->verdict != MS_VERDICT_ALLOW) {
		/* Another address than its last event's: news, at once. */
		a = (const __u64 *)addr->a;
		b = (const __u64 *)v->addr.a;
		if (a[0] != b[0] || a[1] != b[1]) {
			v->addr = *addr;
			v->event_ns = now;
			return MS_EDGE_DUE;
		}
	}
	last = v->event_ns;
	if (now - last < MS_EDGE_EVENT_INTERVAL_NS)
		return MS_EDGE_QUIET;
	/* Once per interval whatever the number of CPUs in the flood. */
	if (__sync_val_compare_and_swap(&v->event_ns, last, now) != last)
		return MS_EDGE_QUIET;
	return MS_EDGE_DUE;
}

#endif /* MICROSEG_BPF_LIB_EDGES_H */
