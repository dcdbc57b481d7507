/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Counters and verdict events.
 *
 * Events are submitted WITHOUT waking the reader (a wakeup per event costs
 * ~18 us per connect); the daemon drains the ring on a short timer. Only
 * when the ring is more than a quarter full do we force a wakeup, so a flood
 * is drained before it overflows. A full ring drops the event and counts it
 * in MS_CTR_EVENTS_LOST: loss is never silent.
 */
#ifndef MICROSEG_BPF_LIB_EVENTS_H
#define MICROSEG_BPF_LIB_EVENTS_H

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

struct ms_flow {
	__u64 cgroup_id;
	__u64 generation;
	struct ms_addr addr;
	__u32 subject;
	__u32 peer;
	__u32 rule_id;
	__be16 port;
	__u8 protocol;
	__u8 direction;
	__u8 hook;
	__u8 verdict;
	__u8 reason;
};

static __always_inline void emit_event(const struct ms_flow *f)
{
	struct ms_event *e;
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_query(&ms_events, BPF_RB_AVAIL_DATA) > ms_ringbuf_bytes / 4)
		flags = BPF_RB_FORCE_WAKEUP;

	e = bpf_ringbuf_reserve(&ms_events, sizeof(*e), 0);
	if (!e) {
		count(MS_CTR_EVENTS_LOST);
		return;
	}
	e->timestamp_ns = bpf_ktime_get_ns();
	e->cgroup_id = f->cgroup_id;
	e->generation = f->generation;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->src_identity = f->subject;
	e->dst_identity = f->peer;
	e->rule_id = f->rule_id;
	e->dst_addr = f->addr;
	e->dst_port = f->port;
	e->protocol = f->protocol;
	e->verdict = f->verdict;
	e->direction = f->direction;
	e->hook = f->hook;
	e->reason = f->reason;
	e->_pad0 = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, flags);
}

#endif /* MICROSEG_BPF_LIB_EVENTS_H */
