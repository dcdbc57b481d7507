/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Address helpers. Every address is handled as a 16-byte struct ms_addr;
 * IPv4 is stored IPv4-mapped (::ffff:a.b.c.d), so an AF_INET6 socket talking
 * to ::ffff:127.0.0.1 is judged exactly like AF_INET talking to 127.0.0.1.
 */
#ifndef MICROSEG_BPF_LIB_ADDR_H
#define MICROSEG_BPF_LIB_ADDR_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"

#define MS_SOCK_STREAM 1
#define MS_SOCK_DGRAM  2

/* Branch hints: the compiler lays the cold branch out of the hot path's
 * way (fewer code pages per run; a page walk is dear on a VM without PCID). */
#define ms_likely(x)   __builtin_expect(!!(x), 1)
#define ms_unlikely(x) __builtin_expect(!!(x), 0)

static __always_inline void addr_from_ip4(struct ms_addr *a, __u32 ip4_be)
{
	__u32 *w = (__u32 *)a->a;

	w[0] = 0;
	w[1] = 0;
	w[2] = bpf_htonl(0x0000ffff);
	w[3] = ip4_be;
}

static __always_inline void addr_from_ip6(struct ms_addr *a, const __u32 w6[4])
{
	__u32 *w = (__u32 *)a->a;

	w[0] = w6[0];
	w[1] = w6[1];
	w[2] = w6[2];
	w[3] = w6[3];
}

static __always_inline bool addr_is_v4(const struct ms_addr *a)
{
	const __u32 *w = (const __u32 *)a->a;

	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0x0000ffff);
}

static __always_inline bool addr_is_unspecified(const struct ms_addr *a)
{
	const __u32 *w = (const __u32 *)a->a;

	return w[3] == 0 && w[0] == 0 && w[1] == 0 && (w[2] == 0 || w[2] == bpf_htonl(0x0000ffff));
}

/* Loopback: the other end is a socket of the same network namespace (no
 * packet with such an address arrives from outside: the kernel drops it as
 * martian). Every other address is looked up in the ipcache, which also
 * knows the addresses of this host and of the workloads' own network
 * namespaces. An unspecified destination is first turned into the address
 * the kernel uses (decide.bpf.h: egress_destination()). */
static __always_inline bool addr_is_loopback(const struct ms_addr *a)
{
	const __u32 *w = (const __u32 *)a->a;

	if (addr_is_v4(a))
		return (bpf_ntohl(w[3]) >> 24) == 127;
	return w[0] == 0 && w[1] == 0 && w[2] == 0 && w[3] == bpf_htonl(1);
}

/* A destination every local receiver on the port may get a copy of:
 * IPv4 multicast (224/4), the limited broadcast 255.255.255.255, IPv6
 * multicast (ff00::/8, link-local ff02:: included). A subnet's broadcast
 * address is known from the ipcache (MS_IPCACHE_F_BROADCAST). */
static __always_inline bool addr_is_multicast(const struct ms_addr *a)
{
	const __u32 *w = (const __u32 *)a->a;

	if (addr_is_v4(a)) {
		__u32 ip = bpf_ntohl(w[3]);

		return (ip >> 28) == 0xe || ip == 0xffffffff;
	}
	return a->a[0] == 0xff;
}

/* Normalise a socket to the policy protocols: MPTCP runs over TCP subflows.
 * ICMP echo ("ping") sockets are not policed (MS_PROTO_UNPOLICED); any other
 * protocol of a stream or datagram socket (UDP-Lite, whose sockets the
 * kernel keeps in a table of their own that the socket lookups do not
 * search; SCTP; ...) is refused for governed sockets (MS_PROTO_REFUSED).
 * Raw and packet sockets meet no hook of ours but ingress, where their type
 * says what they are: they are not policed either. */
static __always_inline __u8 proto_norm(__u32 type, __u32 protocol)
{
	if (type != MS_SOCK_STREAM && type != MS_SOCK_DGRAM)
		return MS_PROTO_UNPOLICED;
	switch (protocol) {
	case IPPROTO_TCP:
	case 262: /* IPPROTO_MPTCP */
		return MS_PROTO_TCP;
	case IPPROTO_UDP:
		return MS_PROTO_UDP;
	case IPPROTO_ICMP:
	case 58: /* IPPROTO_ICMPV6 */
		return MS_PROTO_UNPOLICED;
	default:
		return MS_PROTO_REFUSED;
	}
}

#endif /* MICROSEG_BPF_LIB_ADDR_H */
