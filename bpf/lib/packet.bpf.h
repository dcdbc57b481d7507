/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Inbound packets (cgroup_skb/ingress): header parsing and the identity of
 * the sender.
 *
 * A cgroup_skb program sees the packet from its network header on, after
 * reassembly. IPv6 extension headers are walked (bounded): a SYN hidden
 * behind hop-by-hop or destination options is still a SYN. A packet whose
 * transport header cannot be found is reported as unparsable and the caller
 * fails closed.
 */
#ifndef MICROSEG_BPF_LIB_PACKET_H
#define MICROSEG_BPF_LIB_PACKET_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"
#include "bpf/lib/addr.bpf.h"
#include "bpf/lib/events.bpf.h"
#include "bpf/lib/identity.bpf.h"
#include "bpf/lib/kernel.bpf.h"
#include "bpf/lib/maps.bpf.h"

#define MS_ETH_P_IP   0x0800
#define MS_ETH_P_IPV6 0x86DD
#define MS_IPV6_MAX_EXT_HDRS 8

#define MS_TCP_F_SYN 0x02
#define MS_TCP_F_ACK 0x10

struct ms_pkt {
	struct ms_addr src;
	struct ms_addr dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;     /* IPPROTO_* of the transport header */
	__u8 tcp_flags; /* TCP only */
	bool v4;
	__u16 l4_off;   /* of the transport header, from the network header */
};

struct ms_ip4_hdr {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__be16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ms_ip6_hdr {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u32 saddr[4];
	__u32 daddr[4];
};

/* The ports (and TCP flags) of the transport header at `l4`, read in place. */
static __always_inline int parse_l4_direct(const __u8 *l4, const void *end, __u8 nexthdr,
					   struct ms_pkt *p)
{
	if (nexthdr == IPPROTO_TCP) {
		if ((const void *)(l4 + 14) > end)
			return 1;
		__builtin_memcpy(&p->sport, l4, 2);
		__builtin_memcpy(&p->dport, l4 + 2, 2);
		p->tcp_flags = l4[13];
	} else if (nexthdr == IPPROTO_UDP || nexthdr == IPPROTO_UDPLITE) {
		if ((const void *)(l4 + 4) > end)
			return 1;
		__builtin_memcpy(&p->sport, l4, 2);
		__builtin_memcpy(&p->dport, l4 + 2, 2);
		p->tcp_flags = 0;
	} else {
		return 1;
	}
	p->proto = nexthdr;
	return 0;
}

/* Where the transport header of a simple packet starts, found in place in
 * the linear part (no helper call): an IPv4 header, or an IPv6 header
 * without extension headers. Fills *l4, *nexthdr and *end; returns 0, -1
 * for a packet parse_pkt() rejects too, 1 where parse_pkt() must read the
 * headers with the helper (not all linear, or extension headers). */
static __always_inline int l4_direct(struct __sk_buff *skb, const __u8 **l4, __u8 *nexthdr,
				     const void **end)
{
	const void *data = (const void *)(long)skb->data;

	*end = (const void *)(long)skb->data_end;
	if (skb->protocol == bpf_htons(MS_ETH_P_IP)) {
		const struct ms_ip4_hdr *ip = data;

		if ((const void *)(ip + 1) > *end)
			return 1;
		if ((ip->ver_ihl >> 4) != 4 || (ip->ver_ihl & 0xf) < 5)
			return -1;
		if (ip->frag_off & bpf_htons(0x3fff))
			return -1;
		*l4 = (const __u8 *)data + (ip->ver_ihl & 0xf) * 4;
		*nexthdr = ip->protocol;
		return 0;
	}
	if (skb->protocol == bpf_htons(MS_ETH_P_IPV6)) {
		const struct ms_ip6_hdr *ip6 = data;

		if ((const void *)(ip6 + 1) > *end)
			return 1;
		*l4 = (const __u8 *)(ip6 + 1);
		*nexthdr = ip6->nexthdr;
		return 0;
	}
	return -1;
}

/* The fast path of cgroup_skb/ingress, before anything costs a helper call:
 * true for a TCP packet that cannot open a connection at `sk` (sock_common:
 * only its state is read), i.e. anything but a bare SYN (no ACK) to a
 * listener. Those belong to a connection, its handshake or its close and
 * are never judged. A TCP packet only ever reaches a TCP socket (or a raw
 * one, which is never judged either). False where the headers are not
 * simple (parse_pkt() then reads them). */
static __always_inline bool tcp_opens_nothing(struct __sk_buff *skb, const struct bpf_sock *sk)
{
	const void *end;
	const __u8 *l4;
	__u8 nexthdr;

	if (l4_direct(skb, &l4, &nexthdr, &end) || nexthdr != IPPROTO_TCP)
		return false;
	if (sk->state != BPF_TCP_LISTEN)
		return true;
	if ((const void *)(l4 + 14) > end)
		return false;
	return (l4[13] & (MS_TCP_F_SYN | MS_TCP_F_ACK)) != MS_TCP_F_SYN;
}

/* parse_pkt() for the common case (l4_direct()): 0 with `p` filled; -1
 * where parse_pkt() fails too; 1 where parse_pkt() reads the headers with
 * the helper. */
static __always_inline int parse_pkt_direct(struct __sk_buff *skb, struct ms_pkt *p)
{
	const void *data = (const void *)(long)skb->data;
	const void *end;
	const __u8 *l4;
	__u8 nexthdr;
	int rc = l4_direct(skb, &l4, &nexthdr, &end);

	if (rc)
		return rc;
	if (parse_l4_direct(l4, end, nexthdr, p))
		return 1;
	if (skb->protocol == bpf_htons(MS_ETH_P_IP)) {
		const struct ms_ip4_hdr *ip = data;

		if ((const void *)(ip + 1) > end)
			return 1;
		addr_from_ip4(&p->src, ip->saddr);
		addr_from_ip4(&p->dst, ip->daddr);
		p->v4 = true;
		p->l4_off = (ip->ver_ihl & 0xf) * 4;
	} else {
		const struct ms_ip6_hdr *ip6 = data;
		__u32 saddr[4], daddr[4];

		if ((const void *)(ip6 + 1) > end)
			return 1;
		__builtin_memcpy(saddr, ip6->saddr, sizeof(saddr));
		__builtin_memcpy(daddr, ip6->daddr, sizeof(daddr));
		addr_from_ip6(&p->src, saddr);
		addr_from_ip6(&p->dst, daddr);
		p->v4 = false;
		p->l4_off = sizeof(*ip6);
	}
	return 0;
}

/* Returns 0 and fills `p`, or -1 if no TCP/UDP header could be found. */
static __always_inline int parse_pkt(struct __sk_buff *skb, struct ms_pkt *p)
{
	__u32 off;
	__u8 nexthdr;
	int rc = parse_pkt_direct(skb, p);

	if (rc <= 0)
		return rc;

	if (skb->protocol == bpf_htons(MS_ETH_P_IP)) {
		struct ms_ip4_hdr ip;

		if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
			return -1;
		if ((ip.ver_ihl >> 4) != 4 || (ip.ver_ihl & 0xf) < 5)
			return -1;
		/* A fragment has no transport header of its own (sockets only
		 * ever see reassembled packets; be strict anyway). */
		if (ip.frag_off & bpf_htons(0x3fff))
			return -1;
		off = (ip.ver_ihl & 0xf) * 4;
		nexthdr = ip.protocol;
		addr_from_ip4(&p->src, ip.saddr);
		addr_from_ip4(&p->dst, ip.daddr);
		p->v4 = true;
	} else if (skb->protocol == bpf_htons(MS_ETH_P_IPV6)) {
		struct ms_ip6_hdr ip6;
		int i;

		if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET))
			return -1;
		addr_from_ip6(&p->src, ip6.saddr);
		addr_from_ip6(&p->dst, ip6.daddr);
		p->v4 = false;
		off = sizeof(ip6);
		nexthdr = ip6.nexthdr;
		for (i = 0; i < MS_IPV6_MAX_EXT_HDRS; i++) {
			__u8 ext[2];

			if (nexthdr == IPPROTO_TCP || nexthdr == IPPROTO_UDP ||
			    nexthdr == IPPROTO_UDPLITE)
				break;
			if (nexthdr != 0 /* hop-by-hop */ && nexthdr != 43 /* routing */ &&
			    nexthdr != 60 /* dest opts */ && nexthdr != 44 /* fragment */ &&
			    nexthdr != 51 /* AH */)
				return -1;
			if (bpf_skb_load_bytes_relative(skb, off, ext, sizeof(ext), BPF_HDR_START_NET))
				return -1;
			if (nexthdr == 44) {
				__be16 frag;

				if (bpf_skb_load_bytes_relative(skb, off + 2, &frag, sizeof(frag),
								BPF_HDR_START_NET))
					return -1;
				if (frag & bpf_htons(0xfff9)) /* offset or more-fragments */
					return -1;
				off += 8;
			} else if (nexthdr == 51) {
				off += ((__u32)ext[1] + 2) * 4;
			} else {
				off += ((__u32)ext[1] + 1) * 8;
			}
			nexthdr = ext[0];
		}
		if (i == MS_IPV6_MAX_EXT_HDRS)
			return -1;
	} else {
		return -1;
	}

	p->proto = nexthdr;
	p->l4_off = (__u16)off;
	if (nexthdr == IPPROTO_TCP) {
		__u8 th[14];

		if (bpf_skb_load_bytes_relative(skb, off, th, sizeof(th), BPF_HDR_START_NET))
			return -1;
		__builtin_memcpy(&p->sport, th, 2);
		__builtin_memcpy(&p->dport, th + 2, 2);
		p->tcp_flags = th[13];
	} else if (nexthdr == IPPROTO_UDP || nexthdr == IPPROTO_UDPLITE) {
		__be16 ports[2];

		if (bpf_skb_load_bytes_relative(skb, off, ports, sizeof(ports), BPF_HDR_START_NET))
			return -1;
		p->sport = ports[0];
		p->dport = ports[1];
		p->tcp_flags = 0;
	} else {
		return -1;
	}
	return 0;
}

/* The socket of this netns that sent `p`, looked up with the tuple seen from
 * its side (its local end is the packet's source). Only a socket whose own
 * ports match is taken: a listener or an unconnected server socket that
 * merely shares the source port is not the sender. Returns its identity, or
 * 0 if not found. */
static __always_inline __u32 local_sender(struct __sk_buff *skb, void *cgroups,
					  const struct ms_config *cfg, const struct ms_pkt *p,
					  __u8 proto, __u64 *sender_cgroup)
{
	const struct ms_cgroup_value *entry;
	struct bpf_sock *sk = sock_lookup(skb, &p->dst, p->dport, &p->src, p->sport, proto);
	__u32 id = 0;

	if (!sk)
		return 0;
	/* bpf_sock: src_port host order, dst_port network order. */
	if (sk->src_port == bpf_ntohs(p->sport) &&
	    (sk->dst_port == p->dport || (proto == MS_PROTO_UDP && sk->dst_port == 0)) &&
	    sk->state != BPF_TCP_LISTEN)
		id = sk_identity(cgroups, cfg, sk, sender_cgroup, &entry);
	bpf_sk_release(sk);
	return id;
}

#define MS_LOOPBACK_IFINDEX 1 /* the loopback device, in every netns */
#define MS_PACKET_LOOPBACK  5 /* skb->pkt_type of a looped-back multicast or
                                 broadcast copy (dev_loopback_xmit) */

/* Did a socket of this very netns send `skb`? Locally sent packets reach a
 * local socket over the loopback device, or (multicast and broadcast) as a
 * looped-back copy of what went out of another device. Nothing from
 * another host or netns can arrive that way, whatever its addresses say. */
static __always_inline bool sent_here(const struct __sk_buff *skb)
{
	return skb->ingress_ifindex == MS_LOOPBACK_IFINDEX || skb->pkt_type == MS_PACKET_LOOPBACK;
}

/* The creator cgroup of the socket that sent `p` (local_sender()'s
 * lookup), 0 if not found. */
static __always_inline __u64 local_sender_cgroup(struct __sk_buff *skb, const struct ms_pkt *p, __u8 proto)
{
	struct bpf_sock *sk = sock_lookup(skb, &p->dst, p->dport, &p->src, p->sport, proto);
	__u64 id = 0;

	if (!sk)
		return 0;
	if (sk->src_port == bpf_ntohs(p->sport) && sk->state != BPF_TCP_LISTEN &&
	    (sk->dst_port == p->dport || (proto == MS_PROTO_UDP && sk->dst_port == 0)))
		id = cgroup_id_of(sk_cgroup(sk));
	bpf_sk_release(sk);
	return id;
}

/* The other end of an inbound flow. `sender_cgroup` gets the sender's
 * cgroup if it is local.
 *
 * A packet sent here is its socket's: found by the kernel's lookup, or, if
 * the lookup cannot find it (a socket bound to another device than the one
 * the packet is looked up on, SO_BINDTODEVICE or a scoped IPv6 address; a
 * socket closed meanwhile), MS_IDENTITY_UNATTRIBUTED, which no rule names:
 * never `host`, which a local workload is not. A packet from elsewhere is
 * its source address's (ipcache). `*at`: where the sender is (MS_AT_*;
 * MS_AT_LOCAL: it was looked up). An address of this netns arriving some
 * other way (local traffic through an l3mdev/VRF device) is looked up too,
 * and is the address's identity if not found. */
static __always_inline __u32 ingress_peer(struct __sk_buff *skb, void *cgroups, void *ipcache,
					  const struct ms_config *cfg,
					  const struct ms_pkt *p, __u8 proto, __u64 *sender_cgroup,
					  __u8 *at)
{
	struct ms_ipcache_value *v = NULL;
	bool here = sent_here(skb);
	__u32 id;

	*at = MS_AT_REMOTE;
	if (!here) {
		v = ipcache_lookup(ipcache, &p->src);
		if (!v)
			return MS_IDENTITY_WORLD;
		if (!(v->flags & (MS_IPCACHE_F_HOST | MS_IPCACHE_F_NETNS)) ||
		    v->netns_cookie != bpf_get_netns_cookie(skb)) {
			if (v->flags & MS_IPCACHE_F_REMOTE_NODE)
				*at = MS_AT_NODE;
			return v->identity;
		}
	}
	*at = MS_AT_LOCAL;
	id = local_sender(skb, cgroups, cfg, p, proto, sender_cgroup);
	if (id)
		return id;
	if (here) {
		count(MS_CTR_UNATTRIBUTED);
		return MS_IDENTITY_UNATTRIBUTED;
	}
	return v->identity;
}

#endif /* MICROSEG_BPF_LIB_PACKET_H */
