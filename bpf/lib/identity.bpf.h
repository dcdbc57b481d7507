/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Identity resolution: who is this socket, who is the other end.
 *
 * A socket's identity is that of the cgroup that CREATED it: the kernel
 * records it in the socket at creation (bpf_sk_cgroup_id), and neither
 * moving the process nor passing the fd to another cgroup changes it, so
 * identity cannot be laundered. A cgroup gets the identity of its own entry
 * in the active ms_cgroups slot or, if the daemon has not seen it yet
 * (created a moment ago), of its nearest ancestor that has an entry: the
 * "anchor", found in the cgroup's ancestor array (anchor_of()), however
 * deep. So a process in a brand-new child cgroup of a workload is that
 * workload from its first socket on.
 *
 * The other end of an egress flow (an unspecified destination is first
 * made the address the kernel uses: decide.bpf.h, egress_destination()):
 *   - broadcast / multicast: MS_IDENTITY_MULTICAST, whoever listens;
 *   - loopback: the owner of the socket the connect or datagram reaches in
 *     the same network namespace;
 *   - an address of this host or of a workload's own netns (ipcache flags
 *     HOST / NETNS): the owner of the socket in that netns when it can be
 *     found, else the ipcache identity (host, or the container's workload);
 *   - any other address: its ipcache identity (External / cidr), else world.
 * Of an inbound packet: packet.bpf.h, ingress_peer().
 * A local peer is identified by its socket's cgroup, never by its IP.
 */
#ifndef MICROSEG_BPF_LIB_IDENTITY_H
#define MICROSEG_BPF_LIB_IDENTITY_H

#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"
#include "bpf/lib/addr.bpf.h"
#include "bpf/lib/events.bpf.h"
#include "bpf/lib/kernel.bpf.h"
#include "bpf/lib/maps.bpf.h"

/* Is `cgrp` the managed root or below it? Its ancestor at the root's level
 * (ms_root_level, set at load) is the root: one load, however deep. */
static __always_inline bool under_root(const struct ms_config *cfg, struct cgroup___ms *cgrp)
{
	if (cgroup_level(cgrp) < ms_root_level)
		return false;
	return cgroup_id_of(cgroup_ancestor(cgrp, ms_root_level)) == cfg->root_cgroup_id;
}

/* Nearest proper ancestor of `cgrp` (under the managed root, the caller
 * checked) that has an entry, or 0. The daemon classifies cgroups top
 * down (a scan sees a parent before its children, and stops 32 levels
 * below the root), so along one chain the cgroups that have entries are
 * the upper ones: the parent is asked first (a brand-new child of a
 * classified cgroup), then the levels are bisected, so a chain of any
 * depth (delegation lets a workload nest cgroups without limit) resolves
 * in at most 17 lookups. MS_ANCHOR_DEEP where the chain is deeper than
 * 2^MS_CGROUP_SEARCH_STEPS levels (the caller fails closed). The bisection
 * runs in bpf_loop(): an unrolled loop with a lookup per step multiplies
 * the states the verifier explores at every inlined identity lookup. */
#define MS_CGROUP_SEARCH_STEPS 16
#define MS_ANCHOR_DEEP (~0ull)

struct ms_anchor_search {
	struct cgroup___ms *cgrp;
	void *cgroups;
	__u64 found;    /* the id at `lo`, 0 while lo is below the root */
	__u32 lo, hi;   /* every level <= lo has an entry, none >= hi has */
};

static long anchor_step(__u32 i, void *arg)
{
	struct ms_anchor_search *s = arg;
	__u32 mid;
	__u64 id;

	if (s->hi - s->lo <= 1)
		return 1;
	mid = s->lo + (s->hi - s->lo) / 2;
	id = cgroup_id_of(cgroup_ancestor(s->cgrp, mid));
	if (bpf_map_lookup_elem(s->cgroups, &id)) {
		s->lo = mid;
		s->found = id;
	} else {
		s->hi = mid;
	}
	return 0;
}

static __always_inline __u64 anchor_of(void *cgroups, struct cgroup___ms *cgrp)
{
	struct ms_anchor_search s = {};
	__u32 level = cgroup_level(cgrp);
	__u64 id;

	if (level <= ms_root_level)
		return 0;
	id = cgroup_id_of(cgroup_ancestor(cgrp, level - 1));
	if (bpf_map_lookup_elem(cgroups, &id))
		return id;
	s.cgrp = cgrp;
	s.cgroups = cgroups;
	s.lo = ms_root_level - 1;
	s.hi = level - 1;
	if (s.hi - s.lo > (1u << MS_CGROUP_SEARCH_STEPS))
		return MS_ANCHOR_DEEP;
	bpf_loop(MS_CGROUP_SEARCH_STEPS, anchor_step, &s, 0);
	return s.found;
}

/* Identity (and creator cgroup) of a socket: the judged socket of any hook,
 * or a local sender found by lookup. `*entry` gets the cgroup entry that
 * decided it (the identity's settings), NULL for host, unmanaged and
 * pending. A socket of a cgroup outside the managed root is `host` (only a
 * looked-up sender can be one). */
static __always_inline __u32 sk_identity(void *cgroups, const struct ms_config *cfg,
					 const void *sk, __u64 *cgroup_id,
					 const struct ms_cgroup_value **entry)
{
	struct cgroup___ms *cgrp = sk_cgroup(sk);
	struct ms_cgroup_value *v;
	__u64 anchor;

	*entry = NULL;
	*cgroup_id = cgroup_id_of(cgrp);
	v = bpf_map_lookup_elem(cgroups, cgroup_id);
	if (ms_likely(v)) {
		*entry = v;
		return v->identity;
	}
	/* Not classified yet (or outside the tree): its nearest ancestor. */
	if (!under_root(cfg, cgrp))
		return MS_IDENTITY_HOST;
	anchor = anchor_of(cgroups, cgrp);
	if (anchor == MS_ANCHOR_DEEP) {
		/* Never unmanaged or host: a workload may nest this deep. */
		count(MS_CTR_DEEP_CGROUP);
		return MS_IDENTITY_PENDING;
	}
	v = anchor ? bpf_map_lookup_elem(cgroups, &anchor) : NULL;
	if (!v)
		return MS_IDENTITY_UNMANAGED;
	if (v->flags & MS_CGROUP_F_PENDING_CHILDREN)
		return MS_IDENTITY_PENDING;
	*entry = v;
	return v->identity;
}

/* The kernel's own socket lookup in the current netns: the socket that
 * would receive a packet from (saddr, sport) to (daddr, dport). The result
 * holds a reference: bpf_sk_release() it. */
static __always_inline struct bpf_sock *sock_lookup(void *ctx, const struct ms_addr *saddr, __be16 sport,
						    const struct ms_addr *daddr, __be16 dport, __u8 proto)
{
	struct bpf_sock_tuple t = {};
	__u32 size;

	if (addr_is_v4(daddr)) {
		t.ipv4.saddr = ((const __u32 *)saddr->a)[3];
		t.ipv4.daddr = ((const __u32 *)daddr->a)[3];
		t.ipv4.sport = sport;
		t.ipv4.dport = dport;
		size = sizeof(t.ipv4);
	} else {
		__builtin_memcpy(t.ipv6.saddr, saddr->a, 16);
		__builtin_memcpy(t.ipv6.daddr, daddr->a, 16);
		t.ipv6.sport = sport;
		t.ipv6.dport = dport;
		size = sizeof(t.ipv6);
	}
	if (proto == MS_PROTO_TCP)
		return bpf_sk_lookup_tcp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
	return bpf_sk_lookup_udp(ctx, &t, size, BPF_F_CURRENT_NETNS, 0);
}

/* The source a datagram or connection from `sk` to `daddr` carries, as far
 * as a hook before the route can tell: the socket's bound address (of the
 * destination's family), else the destination itself (what the kernel
 * picks for a local destination: the peers looked up are local), and its
 * port (0 before a connect's autobind). A connected peer socket is found
 * only by a tuple naming its own peer, so the lookups need it. */
static __always_inline void egress_source(const struct bpf_sock *sk, const struct ms_addr *daddr,
					  struct ms_addr *saddr, __be16 *sport)
{
	*saddr = *daddr;
	*sport = bpf_htons((__u16)sk->src_port);
	if (addr_is_v4(daddr)) {
		if (sk->family == 2 /* AF_INET */ && sk->src_ip4) {
			addr_from_ip4(saddr, sk->src_ip4);
		} else if (sk->family == 10 /* AF_INET6 */ && sk->src_ip6[0] == 0 && sk->src_ip6[1] == 0 &&
			   sk->src_ip6[2] == bpf_htonl(0x0000ffff) && sk->src_ip6[3]) {
			addr_from_ip4(saddr, sk->src_ip6[3]);
		}
	} else if (sk->family == 10 && (sk->src_ip6[0] | sk->src_ip6[1] | sk->src_ip6[2] | sk->src_ip6[3])) {
		__u32 w[4] = { sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3] };

		addr_from_ip6(saddr, w);
	}
}

/* The socket of this netns a connection or datagram from (saddr, sport) to
 * (addr, port, proto) would reach: a listener or a bound UDP socket,
 * wildcard and dual-stack binds included, so no bind has to be tracked; a
 * connected UDP socket if it is connected to (saddr, sport). Returns its
 * identity (`host` if outside the managed tree), 0 if none. */
static __always_inline __u32 local_listener(void *ctx, void *cgroups, const struct ms_config *cfg,
					    const struct ms_addr *saddr, __be16 sport,
					    const struct ms_addr *addr, __be16 port, __u8 proto,
					    __u64 *owner_cgroup)
{
	const struct ms_cgroup_value *entry;
	struct bpf_sock *sk = sock_lookup(ctx, saddr, sport, addr, port, proto);
	__u32 id;

	if (!sk)
		return 0;
	id = sk_identity(cgroups, cfg, sk, owner_cgroup, &entry);
	bpf_sk_release(sk);
	return id;
}

/* Where the other end of a flow is (egress_peer(), ingress_peer()). */
enum {
	MS_AT_REMOTE = 0, /* another host or netns, known by its address */
	MS_AT_LOCAL  = 1, /* a socket of this netns: it was looked up */
	MS_AT_NODE   = 2, /* an address of another node of the cluster */
};

static __always_inline struct ms_ipcache_value *ipcache_lookup(void *ipcache,
							       const struct ms_addr *addr)
{
	struct ms_ipcache_key key = {};

	key.prefixlen = 128;
	key.addr = *addr;
	return bpf_map_lookup_elem(ipcache, &key);
}

/* A node of the cluster: the workload listening on (addr, port, proto)
 * there, else the node itself (cluster mode; abi.h: ms_remote_listeners). */
static __always_inline __u32 remote_listener(const struct ms_ipcache_value *v, const struct ms_addr *addr,
					     __be16 port, __u8 proto)
{
	struct ms_remote_listener_key key = {};
	struct ms_remote_listener_value *l;

	key.addr = *addr;
	key.port = port;
	key.protocol = proto;
	l = bpf_map_lookup_elem(&ms_remote_listeners, &key);
	return l ? l->identity : v->identity;
}

/* The other end of an egress flow from the socket of `ctx` to (addr, port,
 * proto). `owner_cgroup` gets the receiving socket's cgroup if it is local.
 * (`ctx` is a sock_addr or skb context: bpf_get_netns_cookie() takes both.)
 * `*at`: where the peer is (MS_AT_*).
 * A broadcast or multicast destination is MS_IDENTITY_MULTICAST: every
 * local socket on the port may get it, so it is no one peer (and never the
 * remote unicast peer `world`). */
static __always_inline __u32 egress_peer(void *ctx, void *cgroups, void *ipcache,
					 const struct ms_config *cfg, const struct ms_addr *saddr,
					 __be16 sport, const struct ms_addr *addr, __be16 port,
					 __u8 proto, __u64 *owner_cgroup, __u8 *at)
{
	struct ms_ipcache_value *v = NULL;
	__u32 id;

	*at = MS_AT_REMOTE;
	if (addr_is_multicast(addr))
		return MS_IDENTITY_MULTICAST;
	if (!addr_is_loopback(addr)) {
		v = ipcache_lookup(ipcache, addr);
		if (!v)
			return MS_IDENTITY_WORLD;
		/* Only an address of this very netns has its socket here. */
		if (!(v->flags & (MS_IPCACHE_F_HOST | MS_IPCACHE_F_NETNS | MS_IPCACHE_F_BROADCAST))) {
			if (v->flags & MS_IPCACHE_F_REMOTE_NODE) {
				*at = MS_AT_NODE;
				return remote_listener(v, addr, port, proto);
			}
			return v->identity;
		}
		if (v->netns_cookie != bpf_get_netns_cookie(ctx))
			return v->flags & MS_IPCACHE_F_BROADCAST ? MS_IDENTITY_WORLD : v->identity;
		if (v->flags & MS_IPCACHE_F_BROADCAST)
			return MS_IDENTITY_MULTICAST;
	}
	*at = MS_AT_LOCAL;
	id = local_listener(ctx, cgroups, cfg, saddr, sport, addr, port, proto, owner_cgroup);
	if (id)
		return id;
	return v ? v->identity : MS_IDENTITY_HOST;
}

#endif /* MICROSEG_BPF_LIB_IDENTITY_H */
