/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The verdict, shared by every entry point. A connection between two
 * workloads needs both sides to consent: the caller's egress is judged at
 * connect()/sendmsg() (decide_egress), the callee's ingress when the first
 * packet arrives at its socket (decide_ingress). Each side is judged once,
 * with kernel identities for both ends where both are local.
 *
 * Order of a decision for a new flow judged at socket S (the subject):
 *   1. subject = identity of S's cgroup (fixed at creation); pending (not classified
 *      yet, may be a workload) -> deny; not a workload -> allow (nothing
 *      governs unmanaged processes);
 *   0. a protocol not policed: ICMP ping and raw sockets pass, any other
 *      but TCP/MPTCP/UDP of a governed socket is refused (proto_norm());
 *   2. not a new flow -> allow without a verdict: TCP packets other than a
 *      SYN to a listener; UDP datagrams answering a recent exchange of S
 *      with that peer (see ms_udp_flows in abi.h; a local peer must still
 *      be the socket it was); a UDP flow a rule of this generation already
 *      allowed (for UDP this is checked before step 1: an exchange is
 *      recorded only for a governed socket);
 *   3. peer = the other end's identity (identity.bpf.h, packet.bpf.h);
 *   4. policy: {subject, peer, dir, proto, port}, then for a remote range
 *      {subject, WORLD, ...}, then {subject, ANY, ...} (see abi.h); miss ->
 *      default deny if the subject is isolated in that direction, unless an
 *      unexpired grant names exactly that flow (ms_grants: allow, reason
 *      GRANT), else allow;
 *   5. deny in monitor mode (per identity, else global) -> audit, pass.
 * Entry points return 1 to let the syscall/packet through, 0 to refuse it
 * (EPERM for connect/sendmsg, drop for packets).
 */
#ifndef MICROSEG_BPF_LIB_DECIDE_H
#define MICROSEG_BPF_LIB_DECIDE_H

#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"
#include "bpf/lib/addr.bpf.h"
#include "bpf/lib/edges.bpf.h"
#include "bpf/lib/events.bpf.h"
#include "bpf/lib/fqdn.bpf.h"
#include "bpf/lib/identity.bpf.h"
#include "bpf/lib/kernel.bpf.h"
#include "bpf/lib/maps.bpf.h"
#include "bpf/lib/packet.bpf.h"
#include "bpf/lib/wire.bpf.h"

/* The maps of the generation in force. */
struct ms_gen {
	struct ms_config *cfg;
	void *cgroups;
	void *policy;
	void *ranges;
	void *ipcache;
};

/* 0 on success; -1 without config, -2 without slot maps (never attached
 * that way; if it happens the caller fails closed). */
static __always_inline int load_gen(struct ms_gen *g)
{
	__u32 zero = 0, slot;

	g->cfg = bpf_map_lookup_elem(&ms_config, &zero);
	if (!g->cfg)
		return -1;
	slot = g->cfg->active_slot & 1;
	g->cgroups = bpf_map_lookup_elem(&ms_cgroups, &slot);
	g->policy = bpf_map_lookup_elem(&ms_policy, &slot);
	g->ranges = bpf_map_lookup_elem(&ms_ranges, &slot);
	g->ipcache = bpf_map_lookup_elem(&ms_ipcache, &slot);
	if (!g->cgroups || !g->policy || !g->ranges || !g->ipcache) {
		count(MS_CTR_NO_POLICY);
		return -2;
	}
	return 0;
}

/* The entry for one peer: its exact port, then (if the subject has any)
 * its port ranges. Intervals are disjoint, so at most one matches. */
static __always_inline struct ms_policy_value *peer_lookup(const struct ms_gen *g, __u32 subject,
							   __u32 peer, __u8 direction, __u8 proto,
							   __be16 port, bool ranges)
{
	struct ms_policy_exact_key key = {};
	struct ms_policy_key rkey = {};
	struct ms_policy_value *v;

	key.subject = subject;
	key.peer = peer;
	key.direction = direction;
	key.protocol = proto;
	key.port = port;
	v = bpf_map_lookup_elem(g->policy, &key);
	if (v || !ranges)
		return v;
	rkey.prefixlen = MS_POLICY_PREFIX_FULL;
	rkey.subject = subject;
	rkey.peer = peer;
	rkey.direction = direction;
	rkey.protocol = proto;
	rkey.port = port;
	return bpf_map_lookup_elem(g->ranges, &rkey);
}

/* Step 4 (abi.h: lookup order). */
static __always_inline struct ms_policy_value *policy_lookup(const struct ms_gen *g, __u32 subject,
							     __u32 peer, __u8 direction,
							     __u8 proto, __be16 port, bool ranges)
{
	struct ms_policy_value *v;

	v = peer_lookup(g, subject, peer, direction, proto, port, ranges);
	if (v)
		return v;
	/* A remote range is part of world. */
	if (peer >= MS_IDENTITY_FIRST_EXTERNAL) {
		v = peer_lookup(g, subject, MS_IDENTITY_WORLD, direction, proto, port, ranges);
		if (v)
			return v;
	}
	return peer_lookup(g, subject, MS_IDENTITY_ANY, direction, proto, port, ranges);
}

/* A grant for exactly this flow that has not expired (abi.h: ms_grants).
 * Only asked where the policy found nothing, so an explicit deny wins and
 * an allowed flow never pays for it. The expiry is checked here, not by
 * the daemon: an entry it has not removed yet is no grant. */
static __always_inline struct ms_grant_value *grant_lookup(const struct ms_flow *f)
{
	struct ms_grant_key key = {};
	struct ms_grant_value *v;

	key.subject = f->subject;
	key.peer = f->peer;
	key.direction = f->direction;
	key.protocol = f->protocol;
	key.port = f->dst_port;
	v = bpf_map_lookup_elem(&ms_grants, &key);
	if (!v || bpf_ktime_get_coarse_ns() >= v->expires_ns)
		return NULL;
	return v;
}

/* Step 5: apply the mode to f->verdict, count it, add it to its edge
 * (edges.bpf.h) and log it when its edge says so: a new edge at once, then
 * at most once per interval (an allowed flow only with log-allowed after
 * its first). Counts come from the edge, never from events. */
static __always_inline int finish(const struct ms_config *cfg, struct ms_flow *f, __u32 mode)
{
	int pass = 1, due;

	if (f->verdict == MS_VERDICT_ALLOW) {
		count(MS_CTR_ALLOWED);
	} else if (mode == MS_MODE_MONITOR) {
		f->verdict = MS_VERDICT_AUDIT;
		count(MS_CTR_AUDITED);
	} else {
		count(MS_CTR_DENIED);
		pass = 0;
	}
	if (ms_likely(!(cfg->flags & MS_CONFIG_F_BENCH_NO_EDGES)))
		due = edge_note(f);
	else
		due = f->verdict == MS_VERDICT_ALLOW ? MS_EDGE_DUE : MS_EDGE_FULL;
	f->in_edge = due != MS_EDGE_FULL;
	if (due >= MS_EDGE_NEW ||
	    (due == MS_EDGE_DUE && (f->verdict != MS_VERDICT_ALLOW || (cfg->flags & MS_CONFIG_F_LOG_ALLOWED))))
		emit_event(f);
	return pass;
}

/* Step 4 and the isolation default for a flow whose subject is a workload
 * and peer is known: f->verdict, f->rule_id, f->reason, nothing counted or
 * logged. `subject` is the subject's cgroup entry (its identity's
 * settings). The test object bpf/verdict_test.bpf.c runs exactly this
 * against the userspace evaluator (compiler/explain.h, evaluate()). */
static __always_inline void policy_verdict(const struct ms_gen *g, struct ms_flow *f,
					   const struct ms_cgroup_value *subject)
{
	struct ms_policy_value *pv;
	/* Without settings (never for a workload): default deny, look everywhere. */
	__u32 flags = MS_IDENT_F_ISOLATE_EGRESS | MS_IDENT_F_ISOLATE_INGRESS |
		      MS_IDENT_F_RANGES_EGRESS | MS_IDENT_F_RANGES_INGRESS;
	bool egress = f->direction == MS_DIR_EGRESS;
	__u32 isolate = egress ? MS_IDENT_F_ISOLATE_EGRESS : MS_IDENT_F_ISOLATE_INGRESS;
	__u32 ranges = egress ? MS_IDENT_F_RANGES_EGRESS : MS_IDENT_F_RANGES_INGRESS;

	if (subject)
		flags = subject->isolation;
	pv = policy_lookup(g, f->subject, f->peer, f->direction, f->protocol, f->dst_port, flags & ranges);
	if (pv) {
		f->verdict = pv->verdict;
		f->rule_id = pv->rule_id;
		f->reason = MS_REASON_RULE;
	} else if (flags & isolate) {
		struct ms_grant_value *gv = grant_lookup(f);

		if (gv) {
			f->verdict = MS_VERDICT_ALLOW;
			f->rule_id = gv->grant_id;
			f->reason = MS_REASON_GRANT;
			return;
		}
		f->verdict = MS_VERDICT_DENY;
		f->rule_id = MS_RULE_NONE;
		f->reason = MS_REASON_DEFAULT_DENY;
	} else {
		f->verdict = MS_VERDICT_ALLOW;
		f->reason = MS_REASON_NOT_ISOLATED;
	}
}

/* Step 4 for a destination bound by names (f->fqdn): after the address's
 * verdict, each unexpired fqdn peer's (its entries, then world's and any
 * peer's, as for a range). A deny of any wins whatever the tier, else an
 * allow of any: a name never opens what a rule for the address closes
 * (abi.h: ms_fqdn_names). */
static __always_inline void fqdn_verdict(const struct ms_gen *g, struct ms_flow *f,
					 const struct ms_cgroup_value *subject)
{
	struct ms_fqdn_binding_value *v = f->fqdn;
	__u32 ranges = MS_IDENT_F_RANGES_EGRESS, allow = MS_FQDN_SLOTS, allow_rule = 0;
	__u64 now = bpf_ktime_get_coarse_ns();
	struct ms_policy_value *pv;
	bool judged = false;

	if (!v || (f->reason == MS_REASON_RULE && f->verdict == MS_VERDICT_DENY))
		return;
	if (subject)
		ranges = subject->isolation & MS_IDENT_F_RANGES_EGRESS;
	for (__u32 k = 0; k < MS_FQDN_SLOTS; k++) {
		__u32 peer = v->slot[k].peer;

		if (peer == 0 || now >= v->slot[k].expires_ns)
			continue;
		judged = true;
		pv = policy_lookup(g, f->subject, peer, f->direction, f->protocol, f->dst_port, ranges);
		if (!pv)
			continue;
		if (pv->verdict != MS_VERDICT_ALLOW) {
			count(MS_CTR_FQDN_JUDGED);
			f->verdict = pv->verdict;
			f->rule_id = pv->rule_id;
			f->reason = MS_REASON_RULE;
			f->peer = peer;
			f->peer_via = MS_PEER_VIA_FQDN;
			f->fqdn_name = v->slot[k].name;
			return;
		}
		if (allow == MS_FQDN_SLOTS) {
			allow = k;
			allow_rule = pv->rule_id;
		}
	}
	if (judged)
		count(MS_CTR_FQDN_JUDGED);
	/* No name allows it, or the address's rule allows it either way. */
	if (allow == MS_FQDN_SLOTS || (f->reason == MS_REASON_RULE && f->verdict == MS_VERDICT_ALLOW))
		return;
	allow &= MS_FQDN_SLOTS - 1;
	f->verdict = MS_VERDICT_ALLOW;
	f->rule_id = allow_rule;
	f->reason = MS_REASON_RULE;
	f->peer = v->slot[allow].peer;
	f->peer_via = MS_PEER_VIA_FQDN;
	f->fqdn_name = v->slot[allow].name;
}

/* Steps 4-5: the verdict, counted per rule (index MS_RULE_NONE: default
 * denies), and the mode (the identity's, else the global one). */
static __always_inline int judge(const struct ms_gen *g, struct ms_flow *f,
				 const struct ms_cgroup_value *subject)
{
	__u32 mode = g->cfg->mode;

	if (subject && subject->mode != MS_MODE_INHERIT)
		mode = subject->mode;
	policy_verdict(g, f, subject);
	if (ms_unlikely(f->fqdn != NULL))
		fqdn_verdict(g, f, subject);
	if (ms_unlikely(f->reason == MS_REASON_GRANT))
		count(MS_CTR_GRANT_ALLOWED); /* rule_id is a grant's: no rule hit */
	else if (f->reason != MS_REASON_NOT_ISOLATED)
		count_rule(f->rule_id);
	return finish(g->cfg, f, mode);
}

/* A subject that may be a workload nobody has classified yet. */
static __always_inline int refuse_pending(const struct ms_gen *g, struct ms_flow *f)
{
	f->verdict = MS_VERDICT_DENY;
	f->reason = MS_REASON_PENDING;
	return finish(g->cfg, f, g->cfg->mode);
}

/* A governed socket of a protocol the datapath does not police (UDP-Lite,
 * SCTP, ...; see proto_norm()): refused, counted, no event (a flow record
 * has no name for the protocol); passed in monitor mode. Not governed (host,
 * unmanaged): passed. */
static __always_inline int refuse_unsupported(const struct ms_gen *g, const void *sk)
{
	const struct ms_cgroup_value *entry;
	__u64 cgroup_id;
	__u32 mode = g->cfg->mode;
	__u32 id = sk_identity(g->cgroups, g->cfg, sk, &cgroup_id, &entry);

	if (id < MS_IDENTITY_FIRST_WORKLOAD && id != MS_IDENTITY_PENDING)
		return 1;
	if (entry && entry->mode != MS_MODE_INHERIT)
		mode = entry->mode;
	count(MS_CTR_UNSUPPORTED_PROTO);
	return mode == MS_MODE_MONITOR;
}

/* ---- UDP exchanges (ms_udp_flows) ---------------------------------------- */

#define MS_UDP_REFRESH_NS 100000000ULL /* write a timestamp at most every 100 ms */

/* The clock of UDP exchanges: the coarse monotonic clock (advanced every
 * tick, 1-10 ms). The TTL is seconds and timestamps are refreshed 100 ms
 * apart, so a tick is precise enough, and it is a load: a precise read
 * (bpf_ktime_get_ns) goes to the clocksource, ~140 ns per datagram on a VM
 * with a paravirtual clock (scripts/bench.sh: sendmsg4 of an established
 * flow 330-425 -> 230-260 ns). Events keep the precise clock (events.bpf.h). */
static __always_inline __u64 udp_clock_ns(void)
{
	return bpf_ktime_get_coarse_ns();
}

static __always_inline bool fresh(__u64 then, __u64 now, __u64 ttl)
{
	return then != 0 && now - then <= ttl;
}

static __always_inline struct ms_udp_flow_value *udp_flow_lookup(__u64 cookie,
								 const struct ms_addr *peer,
								 __be16 port)
{
	struct ms_udp_flow_key key = {};

	key.cookie = cookie;
	key.addr = *peer;
	key.port = port;
	return bpf_map_lookup_elem(&ms_udp_flows, &key);
}

/* A datagram to (`sent`) or from the peer passed; `allowed_gen` is the
 * generation whose rules allowed it, 0 if it passed without (an answer, an
 * audit); `peer_cgroup` is what the entry holds to (abi.h). `v` is the
 * entry if the caller already looked it up. */
static __always_inline void udp_flow_note(struct ms_udp_flow_value *v, __u64 cookie,
					  const struct ms_addr *peer, __be16 port, bool sent,
					  __u64 allowed_gen, __u64 now, __u64 peer_cgroup)
{
	struct ms_udp_flow_value nv = {};
	struct ms_udp_flow_key key = {};

	if (v) {
		__u64 *ts = sent ? &v->sent_ns : &v->heard_ns;
		__u64 *gen = sent ? &v->egress_gen : &v->ingress_gen;

		if (now - *ts >= MS_UDP_REFRESH_NS)
			*ts = now;
		if (allowed_gen && *gen != allowed_gen)
			*gen = allowed_gen;
		if (v->peer_cgroup != peer_cgroup)
			v->peer_cgroup = peer_cgroup;
		return;
	}
	if (sent) {
		nv.sent_ns = now;
		nv.egress_gen = allowed_gen;
	} else {
		nv.heard_ns = now;
		nv.ingress_gen = allowed_gen;
	}
	nv.peer_cgroup = peer_cgroup;
	key.cookie = cookie;
	key.addr = *peer;
	key.port = port;
	bpf_map_update_elem(&ms_udp_flows, &key, &nv, BPF_ANY);
}

/* What a judged flow's entry holds to: the local peer's socket cgroup
 * (MS_AT_LOCAL: its address is of this netns, the socket was looked up). */
static __always_inline __u64 udp_peer_of(__u8 at, __u64 peer_cgroup)
{
	if (at != MS_AT_LOCAL)
		return MS_UDP_PEER_REMOTE;
	return peer_cgroup ? peer_cgroup : MS_UDP_PEER_NOBODY;
}

/* The creator cgroup of the socket `sk` (from a lookup; released here), 0
 * if none. */
static __always_inline __u64 sk_release_cgroup(struct bpf_sock *sk)
{
	__u64 id;

	if (!sk)
		return 0;
	id = cgroup_id_of(sk_cgroup(sk));
	bpf_sk_release(sk);
	return id;
}

/* Step 2 for UDP, for a datagram the socket sends (`sent`) or receives:
 * MS_UDP_NEW if it needs a verdict, MS_UDP_KNOWN if a rule of the
 * generation in force already allowed this exchange, MS_UDP_ANSWER if it
 * answers (egress) or replies to (ingress) the other direction. */
enum { MS_UDP_NEW = 0, MS_UDP_KNOWN = 1, MS_UDP_ANSWER = 2 };

static __always_inline int udp_known(const struct ms_gen *g, struct ms_udp_flow_value *v,
				     bool sent, __u64 cookie, const struct ms_addr *peer,
				     __be16 port, __u64 now)
{
	__u64 ttl = g->cfg->answer_ttl_ns;

	if (!v)
		return MS_UDP_NEW;
	if (fresh(sent ? v->heard_ns : v->sent_ns, now, ttl)) {
		count(MS_CTR_UDP_ANSWERS);
		udp_flow_note(v, cookie, peer, port, sent, 0, now, v->peer_cgroup);
		return MS_UDP_ANSWER;
	}
	if ((sent ? v->egress_gen : v->ingress_gen) == g->cfg->generation &&
	    fresh(sent ? v->sent_ns : v->heard_ns, now, ttl)) {
		udp_flow_note(v, cookie, peer, port, sent, 0, now, v->peer_cgroup);
		return MS_UDP_KNOWN;
	}
	return MS_UDP_NEW;
}

/* Log an answer when allowed flows are logged (the peer is only looked up
 * for that). */
static __always_inline void log_answer(struct ms_flow *f)
{
	f->verdict = MS_VERDICT_ALLOW;
	f->reason = MS_REASON_UDP_ANSWER;
	emit_event(f);
}

/* ---- egress: connect4/6, sendmsg4/6 ------------------------------------- */

/* A UDP socket's connect() passed: what the kernel delivers to it from now
 * on comes from that peer (replies). */
static __always_inline void mark_connected(struct bpf_sock *sk, __u64 peer_cgroup)
{
	struct ms_sock_state *st = bpf_sk_storage_get(&ms_sockets, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (st) {
		st->flags |= MS_SOCK_F_CONNECTED;
		st->peer_cgroup = peer_cgroup;
		st->since_ns = udp_clock_ns();
	}
}

/* The address a connect()/sendmsg() to an unspecified address (0.0.0.0,
 * ::ffff:0.0.0.0, ::) really goes to, as the kernel picks it: for IPv4 the
 * socket's bound address, else 127.0.0.1 (ip_route_output); for IPv6 ::1,
 * or ::ffff:127.0.0.1 from a socket bound to an IPv4-mapped address
 * (tcp_v6_connect, ip6_datagram_connect; udpv6_sendmsg: always ::1). It is
 * written back into the syscall's address, so the kernel goes exactly
 * where it was judged to. A socket bound to a device (other than loopback)
 * would get an address of that device, which a hook cannot know: false,
 * nothing written (the caller judges the peer `unattributed`). */
static __always_inline bool egress_destination(struct bpf_sock_addr *ctx, const struct bpf_sock *sk,
					       struct ms_addr *addr, __u8 hook)
{
	__u32 *w = (__u32 *)addr->a;
	__u32 family, src4, src6[4];
	bool mapped;

	if (ms_likely(!addr_is_unspecified(addr)))
		return true;
	if (sk->bound_dev_if != 0 && sk->bound_dev_if != MS_LOOPBACK_IFINDEX)
		return false;
	/* (Each field read here, into a register: the verifier refuses an
	 * address computed into the socket, which the compiler makes for a
	 * read it moves into a branch.) */
	family = sk->family;
	src4 = sk->src_ip4;
	src6[0] = sk->src_ip6[0];
	src6[1] = sk->src_ip6[1];
	src6[2] = sk->src_ip6[2];
	src6[3] = sk->src_ip6[3];
	asm volatile("" : "+r"(src4), "+r"(src6[3]));
	mapped = family == 10 /* AF_INET6 */ && src6[0] == 0 && src6[1] == 0 &&
		 src6[2] == bpf_htonl(0x0000ffff);
	if (addr_is_v4(addr)) {
		__u32 bound = family == 2 /* AF_INET */ ? src4 : mapped ? src6[3] : 0;

		addr_from_ip4(addr, bound ? bound : bpf_htonl(0x7f000001));
	} else if (hook == MS_HOOK_CONNECT6 && mapped) {
		addr_from_ip4(addr, bpf_htonl(0x7f000001));
	} else {
		w[3] = bpf_htonl(1); /* ::1 */
	}
	/* The verifier takes a context store only at the context pointer plus
	 * a constant: keep the compiler from reusing an address it computed. */
	asm volatile("" : "+r"(ctx));
	if (hook == MS_HOOK_CONNECT4 || hook == MS_HOOK_SENDMSG4) {
		ctx->user_ip4 = w[3];
	} else {
		ctx->user_ip6[0] = w[0];
		ctx->user_ip6[1] = w[1];
		ctx->user_ip6[2] = w[2];
		ctx->user_ip6[3] = w[3];
	}
	/* Read back: to the verifier the address is then as unknown as any
	 * other (the constants written above would make it walk the rest of
	 * the program once more for each). */
	asm volatile("" : "+r"(ctx));
	if (hook == MS_HOOK_CONNECT4 || hook == MS_HOOK_SENDMSG4) {
		addr_from_ip4(addr, ctx->user_ip4);
	} else {
		w[0] = ctx->user_ip6[0];
		w[1] = ctx->user_ip6[1];
		w[2] = ctx->user_ip6[2];
		w[3] = ctx->user_ip6[3];
	}
	return true;
}

static __always_inline int decide_egress(struct bpf_sock_addr *ctx, const struct ms_addr *dst,
					 __be16 port, __u8 hook)
{
	struct ms_addr dst_addr = *dst;
	const struct ms_addr *addr = &dst_addr;
	struct ms_addr src;
	__be16 sport;
	bool known_dst;
	__u8 at = MS_AT_REMOTE;
	const struct ms_cgroup_value *subject;
	struct ms_udp_flow_value *uf = NULL;
	struct bpf_sock *sk;
	struct ms_flow f = {};
	struct ms_gen g;
	__u64 cookie = 0, now = 0;
	bool connect = hook == MS_HOOK_CONNECT4 || hook == MS_HOOK_CONNECT6;
	int rc, pass, known;

	rc = load_gen(&g);
	if (rc)
		return rc == -2 && g.cfg->mode == MS_MODE_MONITOR;

	f.protocol = proto_norm(ctx->type, ctx->protocol);
	if (f.protocol == MS_PROTO_UNPOLICED)
		return 1;
	sk = ctx->sk;
	if (!sk)
		return 0; /* the kernel always gives one; fail closed if not */
	if (ms_unlikely(f.protocol == MS_PROTO_REFUSED))
		return refuse_unsupported(&g, sk);
	known_dst = egress_destination(ctx, sk, &dst_addr, hook);
	egress_source(sk, &dst_addr, &src, &sport);
	f.dst_addr = dst_addr;
	f.dst_port = port;
	f.direction = MS_DIR_EGRESS;
	f.hook = hook;
	f.generation = g.cfg->generation;

	/* An established UDP exchange first: its entry exists only for a
	 * governed socket, so it needs no identity (the hot path of a UDP
	 * flow is one lookup). */
	if (f.protocol == MS_PROTO_UDP) {
		cookie = bpf_get_socket_cookie(ctx);
		now = udp_clock_ns();
		uf = udp_flow_lookup(cookie, addr, port);
		/* A local peer's port may have changed hands: the exchange is
		 * with the socket that had it (abi.h: peer_cgroup). */
		if (uf && uf->peer_cgroup != MS_UDP_PEER_REMOTE &&
		    sk_release_cgroup(sock_lookup(ctx, &src, sport, addr, port, MS_PROTO_UDP)) != uf->peer_cgroup)
			uf = NULL;
		known = udp_known(&g, uf, true, cookie, addr, port, now);
		if (known != MS_UDP_NEW) {
			if (connect)
				mark_connected(sk, uf ? uf->peer_cgroup : MS_UDP_PEER_REMOTE);
			if (ms_unlikely(known == MS_UDP_ANSWER && (g.cfg->flags & MS_CONFIG_F_LOG_ALLOWED))) {
				f.subject = sk_identity(g.cgroups, g.cfg, sk, &f.src_cgroup_id, &subject);
				f.peer = egress_peer(ctx, g.cgroups, g.ipcache, g.cfg, &src, sport, addr, port,
						     f.protocol, &f.dst_cgroup_id, &at);
				log_answer(&f);
			}
			return 1;
		}
	}

	f.subject = sk_identity(g.cgroups, g.cfg, sk, &f.src_cgroup_id, &subject);
	if (ms_unlikely(f.subject == MS_IDENTITY_PENDING)) {
		f.peer = egress_peer(ctx, g.cgroups, g.ipcache, g.cfg, &src, sport, addr, port, f.protocol,
				     &f.dst_cgroup_id, &at);
		return refuse_pending(&g, &f);
	}
	if (f.subject < MS_IDENTITY_FIRST_WORKLOAD)
		return 1;

	if (ms_likely(known_dst)) {
		f.peer = egress_peer(ctx, g.cgroups, g.ipcache, g.cfg, &src, sport, addr, port, f.protocol,
				     &f.dst_cgroup_id, &at);
		if (at == MS_AT_LOCAL)
			f.peer_via = MS_PEER_VIA_SOCKET;
	} else {
		f.peer = MS_IDENTITY_UNATTRIBUTED;
		count(MS_CTR_UNATTRIBUTED);
	}
	if (f.peer == MS_IDENTITY_MULTICAST)
		count(MS_CTR_MULTICAST);
	if (ms_unlikely(subject && (subject->isolation & MS_IDENT_F_FQDN))) {
		/* A remote address the subject may have resolved by a name. */
		if (at == MS_AT_REMOTE && (f.peer == MS_IDENTITY_WORLD || f.peer >= MS_IDENTITY_FIRST_EXTERNAL))
			fqdn_bound(&f);
		if (f.protocol == MS_PROTO_TCP && (port == bpf_htons(53) || port == bpf_htons(853)))
			count(MS_CTR_FQDN_DNS_UNSEEN);
	}
	pass = judge(&g, &f, subject);
	if (!pass || f.protocol != MS_PROTO_UDP)
		return pass;
	/* A connected socket needs no exchange entry: what it receives passes
	 * by its mark (decide_ingress) and what it send()s meets no hook. Only
	 * a sendto() with an address is judged again. So a connect-per-query
	 * client (glibc's and Go's resolvers) never fills ms_udp_flows, whose
	 * inserts cost several times a lookup once it is full (LRU eviction). */
	if (connect)
		mark_connected(sk, udp_peer_of(at, f.dst_cgroup_id));
	else
		udp_flow_note(uf, cookie, addr, port, true,
			      f.verdict == MS_VERDICT_ALLOW ? f.generation : 0, now,
			      udp_peer_of(at, f.dst_cgroup_id));
	return pass;
}

/* ---- ingress: cgroup_skb/ingress ---------------------------------------- */

/* A DNS answer to a query of `sk` (a connected socket's reply, or an
 * answer to its exchange): what it binds, if the socket's workload names
 * fqdn peers (lib/fqdn.bpf.h). An answer nobody asked for binds nothing. */
static __always_inline void dns_answer(struct __sk_buff *skb, const struct ms_gen *g, struct bpf_sock *sk,
				       const struct ms_pkt *p)
{
	const struct ms_cgroup_value *entry;
	__u64 cgroup_id;
	__u32 id = sk_identity(g->cgroups, g->cfg, sk, &cgroup_id, &entry);

	if (id < MS_IDENTITY_FIRST_WORKLOAD || !entry || !(entry->isolation & MS_IDENT_F_FQDN))
		return;
	if (!bpf_map_lookup_elem(&ms_fqdn_resolvers, &p->src)) {
		count(MS_CTR_FQDN_UNTRUSTED);
		return;
	}
	fqdn_learn(skb, (__u32)p->l4_off + 8, id);
}

/* A SYN from another node: its wire identity, if it has one, is the peer
 * (f->peer, f->peer_via). Returns -1 to go on and judge; for a forged one,
 * the verdict made here whatever the policy: 0 refused, 1 audited in
 * monitor mode. */
static __always_inline int wire_peer(struct __sk_buff *skb, const struct ms_gen *g, struct ms_flow *f,
				     const struct ms_pkt *p, const struct ms_cgroup_value *subject)
{
	__u32 claimed = 0, mode = g->cfg->mode;
	int v = wire_verify(skb, p, &claimed);

	if (v == MS_WIRE_NONE) {
		count(MS_CTR_WIRE_ABSENT);
		return -1;
	}
	if (v == MS_WIRE_VALID) {
		count(MS_CTR_WIRE_VERIFIED);
		f->peer = claimed;
		f->peer_via = MS_PEER_VIA_WIRE;
		return -1;
	}
	count(MS_CTR_WIRE_INVALID);
	if (subject && subject->mode != MS_MODE_INHERIT)
		mode = subject->mode;
	f->verdict = MS_VERDICT_DENY;
	f->rule_id = MS_RULE_NONE;
	f->reason = MS_REASON_WIRE_INVALID;
	return finish(g->cfg, f, mode);
}

static __always_inline int decide_ingress(struct __sk_buff *skb, struct bpf_sock *sk, __u8 proto)
{
	const struct ms_cgroup_value *subject;
	struct ms_udp_flow_value *uf = NULL;
	struct ms_sock_state *st;
	struct ms_flow f = {};
	struct ms_pkt p = {};
	struct ms_gen g;
	__u64 cookie = 0, now = 0;
	__u8 at = MS_AT_REMOTE;
	int rc, pass, known;

	rc = load_gen(&g);
	if (rc)
		return rc == -2 && g.cfg->mode == MS_MODE_MONITOR;
	if (ms_unlikely(proto == MS_PROTO_REFUSED))
		return refuse_unsupported(&g, sk);

	if (ms_unlikely(parse_pkt(skb, &p) < 0)) {
		/* Nothing to judge it by: fail closed for governed sockets. */
		f.subject = sk_identity(g.cgroups, g.cfg, sk, &f.dst_cgroup_id, &subject);
		if (f.subject < MS_IDENTITY_FIRST_WORKLOAD && f.subject != MS_IDENTITY_PENDING)
			return 1;
		count(MS_CTR_UNPARSED);
		return g.cfg->mode == MS_MODE_MONITOR;
	}
	/* Only a SYN opens a TCP flow; the rest of the handshake and every
	 * packet of an established connection are not judged. */
	if (proto == MS_PROTO_TCP && (p.tcp_flags & (MS_TCP_F_SYN | MS_TCP_F_ACK)) != MS_TCP_F_SYN)
		return 1;
	/* The kernel delivers to a connected UDP socket only what its peer
	 * sends, and connect() was judged: replies. */
	if (proto == MS_PROTO_UDP && sk->state == BPF_TCP_ESTABLISHED) {
		st = bpf_sk_storage_get(&ms_sockets, sk, 0, 0);
		if (st && (st->flags & MS_SOCK_F_CONNECTED) &&
		    (st->peer_cgroup == MS_UDP_PEER_REMOTE ||
		     local_sender_cgroup(skb, &p, proto) == st->peer_cgroup)) {
			if (ms_unlikely(p.sport == bpf_htons(53)))
				dns_answer(skb, &g, sk, &p);
			return 1;
		}
	}

	f.src_addr = p.src;
	f.dst_addr = p.dst;
	f.src_port = p.sport;
	f.dst_port = p.dport;
	f.protocol = proto;
	f.direction = MS_DIR_INGRESS;
	f.hook = MS_HOOK_INGRESS;
	f.generation = g.cfg->generation;

	/* An established UDP exchange first (see decide_egress). */
	if (proto == MS_PROTO_UDP) {
		cookie = bpf_get_socket_cookie(skb);
		now = udp_clock_ns();
		uf = udp_flow_lookup(cookie, &p.src, p.sport);
		if (uf && uf->peer_cgroup != MS_UDP_PEER_REMOTE &&
		    local_sender_cgroup(skb, &p, proto) != uf->peer_cgroup)
			uf = NULL;
		known = udp_known(&g, uf, false, cookie, &p.src, p.sport, now);
		if (ms_unlikely(known == MS_UDP_ANSWER && p.sport == bpf_htons(53)))
			dns_answer(skb, &g, sk, &p);
		if (known != MS_UDP_NEW) {
			if (ms_unlikely(known == MS_UDP_ANSWER && (g.cfg->flags & MS_CONFIG_F_LOG_ALLOWED))) {
				f.subject = sk_identity(g.cgroups, g.cfg, sk, &f.dst_cgroup_id, &subject);
				f.peer = ingress_peer(skb, g.cgroups, g.ipcache, g.cfg, &p, proto,
						      &f.src_cgroup_id, &at);
				log_answer(&f);
			}
			return 1;
		}
	}

	f.subject = sk_identity(g.cgroups, g.cfg, sk, &f.dst_cgroup_id, &subject);
	if (ms_unlikely(f.subject == MS_IDENTITY_PENDING)) {
		f.peer = ingress_peer(skb, g.cgroups, g.ipcache, g.cfg, &p,
				      proto, &f.src_cgroup_id, &at);
		return refuse_pending(&g, &f);
	}
	if (f.subject < MS_IDENTITY_FIRST_WORKLOAD)
		return 1;

	f.peer = ingress_peer(skb, g.cgroups, g.ipcache, g.cfg, &p, proto,
			      &f.src_cgroup_id, &at);
	if (at == MS_AT_LOCAL)
		f.peer_via = MS_PEER_VIA_SOCKET;
	if (at == MS_AT_NODE && proto == MS_PROTO_TCP) {
		pass = wire_peer(skb, &g, &f, &p, subject);
		if (pass >= 0)
			return pass;
	}
	pass = judge(&g, &f, subject);
	if (pass && proto == MS_PROTO_UDP)
		udp_flow_note(uf, cookie, &p.src, p.sport, false,
			      f.verdict == MS_VERDICT_ALLOW ? f.generation : 0, now,
			      udp_peer_of(at, f.src_cgroup_id));
	return pass;
}

#endif /* MICROSEG_BPF_LIB_DECIDE_H */
