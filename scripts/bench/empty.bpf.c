/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Benchmark floor: the cheapest possible program on each hook microseg uses.
 * Every program only returns 1 (allow). scripts/bench.sh attaches them to a
 * throwaway cgroup of its own and compares the kernel's run_time_ns/run_cnt
 * of microseg's programs against these, measured in the same run.
 *
 * Two anchors run next to them on connect4 (they allow too): a minimal
 * allow-list check (two hash lookups: the caller's cgroup, then a rule for
 * {identity, address, port}, as the anchor "a two-lookup check"),
 * and the kernel's socket lookup for the destination alone (what naming the
 * callee by its listening socket costs before any policy). A third creates
 * a socket local storage element per connect (bpf_sk_storage_get with
 * F_CREATE): what marking a signed connection to another node in socket
 * storage would cost connect4, the reason the wire identity stores nothing
 * per socket (bpf/lib/wire.bpf.h); section 6 prints it beside its own
 * ON/OFF difference in connect4.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "anchor.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("cgroup/connect4")
int empty_connect4(struct bpf_sock_addr *ctx) { return 1; }

SEC("cgroup/connect6")
int empty_connect6(struct bpf_sock_addr *ctx) { return 1; }

SEC("cgroup/sendmsg4")
int empty_sendmsg4(struct bpf_sock_addr *ctx) { return 1; }

SEC("cgroup/sendmsg6")
int empty_sendmsg6(struct bpf_sock_addr *ctx) { return 1; }

SEC("cgroup_skb/ingress")
int empty_ingress(struct __sk_buff *skb) { return 1; }

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u32);
} anchor_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct anchor_rule_key);
	__type(value, __u32);
} anchor_rules SEC(".maps");

/* How often each anchor found what it looked for (the tool checks). */
__u64 anchor_rule_hits = 0;
__u64 anchor_sockets_found = 0;

SEC("cgroup/connect4")
int anchor_lookup2(struct bpf_sock_addr *ctx)
{
	__u64 cgroup = bpf_get_current_cgroup_id();
	struct anchor_rule_key key = {};
	__u32 *id = bpf_map_lookup_elem(&anchor_ids, &cgroup);

	key.identity = id ? *id : 0;
	key.daddr = ctx->user_ip4;
	key.dport = (__u16)ctx->user_port;
	if (bpf_map_lookup_elem(&anchor_rules, &key))
		__sync_fetch_and_add(&anchor_rule_hits, 1);
	return 1;
}

SEC("cgroup/connect4")
int anchor_socklookup(struct bpf_sock_addr *ctx)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	t.ipv4.daddr = ctx->user_ip4;
	t.ipv4.dport = (__u16)ctx->user_port;
	sk = bpf_sk_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (sk) {
		__sync_fetch_and_add(&anchor_sockets_found, 1);
		bpf_sk_release(sk);
	}
	return 1;
}

struct anchor_sock_state {
	__u32 flags;
	__u32 identity;
	__u64 peer;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct anchor_sock_state);
} anchor_sockets SEC(".maps");

__u64 anchor_storage_created = 0;

SEC("cgroup/connect4")
int anchor_skstorage(struct bpf_sock_addr *ctx)
{
	struct anchor_sock_state *st;

	if (!ctx->sk)
		return 1;
	st = bpf_sk_storage_get(&anchor_sockets, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (st) {
		st->flags |= 1;
		st->identity = 1;
		__sync_fetch_and_add(&anchor_storage_created, 1);
	}
	return 1;
}
