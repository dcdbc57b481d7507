/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Address helpers. Every address is handled as a 16-byte struct ms_addr;
 * IPv4 is stored IPv4-mapped (::ffff:a.b.c.d), so an AF_INET6 socket talking
 * to ::ffff:127.0.0.1 is judged exactly like AF_INET talking to 127.0.0.1.
 */
#ifndef MICROSEG_BPF_LIB_ADDR_H
#define MICROSEG_BPF_LIB_ADDR_H

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

/* Loopback or unspecified (a connect to 0.0.0.0 / :: reaches this netns):
 * the other end is a socket of the same network namespace. Every other
 * address is looked up in the ipcache, which also knows the addresses of
 * this host and of the workloads' own network namespaces. */
static __always_inline bool addr_is_loopback(const struct ms_addr *a)
{
	const __u32 *w = (const __u32 *)a->a;

	if (addr_is_v4(a)) {
		__u32 ip = bpf_ntohl(w[3]);

		return (ip >> 24) == 127 || ip == 0;
	}
	return w[0] == 0 && w[1] == 0 && w[2] == 0 && (w[3] == 0 || w[3] == bpf_htonl(1));
}

/* Normalise a socket protocol to the policy protocols. MPTCP runs over TCP
 * subflows and UDP-Lite is UDP for policy purposes; anything else keeps a
 * value no rule can match (judged by default deny). */
static __always_inline __u8 proto_norm(__u32 protocol)
{
	switch (protocol) {
	case IPPROTO_TCP:
	case 262: /* IPPROTO_MPTCP */
		return MS_PROTO_TCP;
	case IPPROTO_UDP:
	case IPPROTO_UDPLITE:
		return MS_PROTO_UDP;
	default:
		return 255;
	}
}

#endif /* MICROSEG_BPF_LIB_ADDR_H */
