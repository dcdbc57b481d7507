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
 *   sockops                ms_established: when each TCP connection was
 *                          established (the age revocation records give;
 *                          attached while revocation may end connections);
 *                          ms_sockops: the wire identity on the SYN of a
 *                          connection to another node (cluster mode, attached
 *                          only while the node signs; lib/wire.bpf.h)
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
#include "bpf/lib/events.bpf.h"
#include "bpf/lib/identity.bpf.h"
#include "bpf/lib/packet.bpf.h"
#include "bpf/lib/wire.bpf.h"
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
	/* Fast path, no helper call: almost every packet is TCP that opens
	 * nothing (packet.bpf.h). */
	if (tcp_opens_nothing(skb, sk))
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	proto = proto_norm(sk->type, sk->protocol);
	if (proto == MS_PROTO_UNPOLICED)
		return 1;
	/* Only a listener can be asked for a new TCP connection; established
	 * and closing sockets carry replies. */
	if (proto == MS_PROTO_TCP && sk->state != BPF_TCP_LISTEN)
		return 1;
	return decide_ingress(skb, sk, proto);
}

SEC("sockops")
int ms_sockops(struct bpf_sock_ops *skops)
{
	struct ms_gen g;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		if (load_gen(&g) == 0)
			wire_arm(skops, g.cgroups, g.ipcache, g.cfg);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		wire_reserve(skops);
		break;
	case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
		if (load_gen(&g) == 0)
			wire_write(skops, g.cgroups, g.cfg);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		wire_disarm(skops);
		break;
	}
	return 1;
}

/* Both ends of every TCP connection of the managed tree: when it was
 * established (ms_sock_state.since_ns), the age a revocation record gives.
 * Runs at every sockops point of a socket and writes at the two
 * established ones: a socket-storage create per end (~0.5 us, bench 1e),
 * so the daemon attaches it only while revocation may end connections. */
SEC("sockops")
int ms_established(struct bpf_sock_ops *skops)
{
	struct ms_sock_state *st;
	struct bpf_sock *sk;

	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB &&
	    skops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	sk = skops->sk;
	if (!sk)
		return 1;
	st = bpf_sk_storage_get(&ms_sockets, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (st)
		st->since_ns = bpf_ktime_get_coarse_ns();
	return 1;
}
