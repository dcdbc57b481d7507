/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * microseg datapath: cgroup socket hooks attached to the managed cgroup root.
 *
 * Entry points are thin: read the context, normalise the address (IPv4 and
 * IPv4-mapped IPv6 become the same ms_addr) and call decide_egress() or
 * decide_ingress() (lib/decide.bpf.h).
 *
 *   cgroup/connect4|6      TCP connect (incl. TCP Fast Open), connected UDP
 *   cgroup/sendmsg4|6      unconnected UDP sendto/sendmsg
 *   cgroup_skb/ingress     the first packet of every inbound flow (TCP SYN to
 *                          a listener, UDP datagrams not part of an exchange)
 *   cgroup/post_bind4|6    who listens where (identity of local destinations)
 *   cgroup/sock_release    forget a listener when its socket goes away
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"
#include "bpf/lib/maps.bpf.h"
#include "bpf/lib/kernel.bpf.h"
#include "bpf/lib/addr.bpf.h"
#include "bpf/lib/identity.bpf.h"
#include "bpf/lib/events.bpf.h"
#include "bpf/lib/packet.bpf.h"
#include "bpf/lib/decide.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("cgroup/connect4")
int ms_connect4(struct bpf_sock_addr *ctx)
{
	struct ms_addr addr;

	addr_from_ip4(&addr, ctx->user_ip4);
	return decide_egress(ctx, &addr, (__be16)ctx->user_port, MS_HOOK_CONNECT4);
}

SEC("cgroup/connect6")
int ms_connect6(struct bpf_sock_addr *ctx)
{
	struct ms_addr addr;
	__u32 w[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };

	addr_from_ip6(&addr, w);
	return decide_egress(ctx, &addr, (__be16)ctx->user_port, MS_HOOK_CONNECT6);
}

SEC("cgroup/sendmsg4")
int ms_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct ms_addr addr;

	addr_from_ip4(&addr, ctx->user_ip4);
	return decide_egress(ctx, &addr, (__be16)ctx->user_port, MS_HOOK_SENDMSG4);
}

SEC("cgroup/sendmsg6")
int ms_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct ms_addr addr;
	__u32 w[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };

	addr_from_ip6(&addr, w);
	return decide_egress(ctx, &addr, (__be16)ctx->user_port, MS_HOOK_SENDMSG6);
}

SEC("cgroup_skb/ingress")
int ms_ingress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	__u8 proto;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	proto = proto_norm(sk->protocol);
	/* Fast path, no parsing: only a listener can be asked for a new TCP
	 * connection; established and closing sockets carry replies. */
	if (proto == MS_PROTO_TCP && sk->state != BPF_TCP_LISTEN)
		return 1;
	if (proto != MS_PROTO_TCP && proto != MS_PROTO_UDP)
		return 1;
	return decide_ingress(skb, sk, proto);
}

/* Listener key of a socket. `v6` is decided by the caller from the hook
 * (post_bind4/6) or the family, and the context fields are read in separate
 * straight-line paths: the verifier refuses a context pointer that the
 * compiler offset to share one load between both families. */
static __always_inline void bind_key_of(struct bpf_sock *sk, bool v6, struct ms_bind_key *key)
{
	key->netns_cookie = bpf_get_netns_cookie(sk);
	if (v6) {
		__u32 w[4];

		w[0] = sk->src_ip6[0];
		w[1] = sk->src_ip6[1];
		w[2] = sk->src_ip6[2];
		w[3] = sk->src_ip6[3];
		addr_from_ip6(&key->addr, w);
	} else {
		__u32 ip4 = sk->src_ip4;

		asm volatile("" ::: "memory");
		addr_from_ip4(&key->addr, ip4);
	}
	key->port = bpf_htons((__u16)sk->src_port); /* src_port is host order */
	key->protocol = proto_norm(sk->protocol);
}

static __always_inline int record_bind(struct bpf_sock *sk, bool v6)
{
	struct ms_bind_key key = {};
	struct ms_bind_value val = {};
	struct ms_sock_state *st;
	struct cgroup___ms *cgrp;
	struct ms_config *cfg;
	void *cgroups;
	__u32 zero = 0, slot;

	bind_key_of(sk, v6, &key);
	val.cookie = bpf_get_socket_cookie(sk);
	cgrp = sk_cgroup(sk);
	val.cgroup_id = cgroup_id_of(cgrp);
	/* The anchor resolves the owner while its own cgroup has no entry
	 * (created a moment ago). */
	cfg = bpf_map_lookup_elem(&ms_config, &zero);
	if (cfg) {
		slot = cfg->active_slot & 1;
		cgroups = bpf_map_lookup_elem(&ms_cgroups, &slot);
		if (cgroups && !bpf_map_lookup_elem(cgroups, &val.cgroup_id))
			val.anchor_cgroup_id = anchor_of(cgroups, cfg, cgrp);
	}
	st = bpf_sk_storage_get(&ms_sockets, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (bpf_map_update_elem(&ms_binds, &key, &val, BPF_ANY)) {
		count(MS_CTR_BIND_TABLE_FULL);
		return 1;
	}
	if (st) {
		st->bound = key;
		st->flags |= MS_SOCK_F_BOUND;
	}
	return 1;
}

SEC("cgroup/post_bind4")
int ms_post_bind4(struct bpf_sock *sk)
{
	return record_bind(sk, false);
}

SEC("cgroup/post_bind6")
int ms_post_bind6(struct bpf_sock *sk)
{
	return record_bind(sk, true);
}

SEC("cgroup/sock_release")
int ms_sock_release(struct bpf_sock *sk)
{
	struct ms_sock_state *st = bpf_sk_storage_get(&ms_sockets, sk, 0, 0);
	struct ms_bind_value *b;
	struct ms_bind_key key;

	if (!st || !(st->flags & MS_SOCK_F_BOUND))
		return 1;
	key = st->bound;
	b = bpf_map_lookup_elem(&ms_binds, &key);
	/* Another socket may have bound the same key since (SO_REUSEADDR,
	 * a restart): only the owner removes its entry. */
	if (b && b->cookie == bpf_get_socket_cookie(sk))
		bpf_map_delete_elem(&ms_binds, &key);
	return 1;
}
