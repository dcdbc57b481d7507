/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The sockets of one network namespace, for revoking established
 * connections (abi.h: ms_sock_record). Not part of the datapath: nothing
 * here is attached to a cgroup or pinned, and it runs only when the daemon
 * reads an iterator (userspace/datapath/socket_iterator.cpp), in the netns it
 * entered to create it. It reads the datapath's ms_sockets (the daemon
 * hands it the pinned map) for each connection's age.
 *
 *   ms_socks_tcp   iter/tcp: every TCP socket (listeners and request
 *                  sockets too: userspace picks)
 *   ms_socks_udp   iter/udp: every UDP socket
 *
 * List pass (ms_destroy_pass 0): one record per socket. Destroy pass: the
 * sockets whose cookie is in ms_revoke_cookies are destroyed
 * (bpf_sock_destroy(), Linux >= 6.5: a TCP connection is aborted and its
 * peer sent a reset, a UDP socket's pending calls fail), one record each.
 * The iterators hold each socket's lock while the program runs, as the
 * kfunc requires.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"
#include "bpf/lib/addr.bpf.h"
#include "bpf/lib/kernel.bpf.h"
#include "bpf/lib/sock_state.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MS_AF_INET 2
#define MS_AF_INET6 10
/* Not full sockets (struct inet_timewait_sock, struct request_sock): no
 * cgroup, nothing to destroy; a connection has its full socket too. */
#define MS_TCP_TIME_WAIT 6
#define MS_TCP_NEW_SYN_RECV 12

/* The kernel's own names (CO-RE: only these fields, offsets relocated). */
struct in6_addr___ms {
	union {
		__u32 u6_addr32[4];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
	unsigned short skc_family;
	volatile unsigned char skc_state;
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	struct in6_addr___ms skc_v6_daddr;
	struct in6_addr___ms skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct seq_file;
struct udp_sock;
struct tcp_sock;

struct bpf_iter_meta {
	struct seq_file *seq;
} __attribute__((preserve_access_index));

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
} __attribute__((preserve_access_index));

struct bpf_iter__udp {
	struct bpf_iter_meta *meta;
	struct udp_sock *udp_sk;
} __attribute__((preserve_access_index));

extern int bpf_sock_destroy(struct sock_common *sk) __ksym;

/* Set by the daemon before it creates the iterator. */
volatile __u32 ms_destroy_pass;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);   /* socket cookie */
	__type(value, __u8);
} ms_revoke_cookies SEC(".maps");

static __always_inline void record_of(struct ms_sock_record *r, struct sock_common *skc, __u8 protocol)
{
	__u32 l[4], d[4];

	r->cookie = bpf_get_socket_cookie(skc);
	r->cgroup_id = cgroup_id_of(sk_cgroup(skc));
	r->family = (__u8)skc->skc_family;
	r->state = skc->skc_state;
	r->protocol = protocol;
	r->local_port = bpf_htons(skc->skc_num);
	r->remote_port = skc->skc_dport;
	if (r->family == MS_AF_INET) {
		addr_from_ip4(&r->local, skc->skc_rcv_saddr);
		addr_from_ip4(&r->remote, skc->skc_daddr);
	} else {
		l[0] = skc->skc_v6_rcv_saddr.in6_u.u6_addr32[0];
		l[1] = skc->skc_v6_rcv_saddr.in6_u.u6_addr32[1];
		l[2] = skc->skc_v6_rcv_saddr.in6_u.u6_addr32[2];
		l[3] = skc->skc_v6_rcv_saddr.in6_u.u6_addr32[3];
		d[0] = skc->skc_v6_daddr.in6_u.u6_addr32[0];
		d[1] = skc->skc_v6_daddr.in6_u.u6_addr32[1];
		d[2] = skc->skc_v6_daddr.in6_u.u6_addr32[2];
		d[3] = skc->skc_v6_daddr.in6_u.u6_addr32[3];
		addr_from_ip6(&r->local, l);
		addr_from_ip6(&r->remote, d);
	}
}

/* When the connection was established (ms_established) or the UDP socket
 * connected; 0 when not known. `sk` is the full socket (a tcp_sock or
 * udp_sock: what bpf_sk_storage_get takes here), or NULL. */
static __always_inline __u64 since_of(void *sk)
{
	struct ms_sock_state *st;

	if (!sk)
		return 0;
	st = bpf_sk_storage_get(&ms_sockets, sk, 0, 0);
	return st ? st->since_ns : 0;
}

static __always_inline int visit(struct bpf_iter_meta *meta, struct sock_common *skc, void *full,
				 __u8 protocol)
{
	struct ms_sock_record r = {};
	__u64 cookie;
	int rc;

	if (!skc)
		return 0;
	if (skc->skc_family != MS_AF_INET && skc->skc_family != MS_AF_INET6)
		return 0;
	if (skc->skc_state == MS_TCP_TIME_WAIT || skc->skc_state == MS_TCP_NEW_SYN_RECV)
		return 0;
	if (ms_destroy_pass) {
		cookie = bpf_get_socket_cookie(skc);
		if (!bpf_map_lookup_elem(&ms_revoke_cookies, &cookie))
			return 0;
		record_of(&r, skc, protocol);
		r.since_ns = since_of(full);
		rc = bpf_sock_destroy(skc);
		r.destroyed = rc == 0;
		r.destroy_error = rc;
	} else {
		record_of(&r, skc, protocol);
		r.since_ns = since_of(full);
	}
	bpf_seq_write(meta->seq, &r, sizeof(r));
	return 0;
}

SEC("iter/tcp")
int ms_socks_tcp(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;

	return visit(ctx->meta, skc, skc ? bpf_skc_to_tcp_sock(skc) : NULL, IPPROTO_TCP);
}

SEC("iter/udp")
int ms_socks_udp(struct bpf_iter__udp *ctx)
{
	return visit(ctx->meta, (struct sock_common *)ctx->udp_sk, ctx->udp_sk, IPPROTO_UDP);
}
