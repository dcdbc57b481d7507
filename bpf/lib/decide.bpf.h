/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one verdict function shared by every egress entry point.
 *
 * Order of a decision for a new flow from socket S to (addr, port, proto):
 *   1. subject = identity of S's creator cgroup; pending (not classified
 *      yet, may be a workload) -> deny; not a workload -> allow (nothing
 *      governs unmanaged processes' egress);
 *   2. UDP: a peer S heard from within answer_ttl -> allow as an answer;
 *   3. peer = owner of the local listener, or world;
 *   4. policy: {subject, peer, ...}, then {subject, ANY, ...} (see abi.h);
 *      miss -> default deny if the subject is isolated for egress;
 *   5. deny in monitor mode (per identity, else global) -> audit, pass.
 * Returns 1 to let the syscall proceed, 0 to fail it with EPERM.
 */
#ifndef MICROSEG_BPF_LIB_DECIDE_H
#define MICROSEG_BPF_LIB_DECIDE_H

static __always_inline struct ms_policy_value *policy_lookup(void *policy, __u32 subject,
							     __u32 peer, __u8 direction,
							     __u8 proto, __be16 port)
{
	struct ms_policy_key key = {};
	struct ms_policy_value *v;

	key.prefixlen = MS_POLICY_PREFIX_FULL;
	key.subject = subject;
	key.peer = peer;
	key.direction = direction;
	key.protocol = proto;
	key.port = port;
	v = bpf_map_lookup_elem(policy, &key);
	if (v)
		return v;
	key.peer = MS_IDENTITY_ANY;
	return bpf_map_lookup_elem(policy, &key);
}

static __always_inline bool udp_answer(struct bpf_sock_addr *ctx, const struct ms_config *cfg,
				       const struct ms_addr *addr, __be16 port)
{
	struct ms_udp_peer_key key = {};
	__u64 *seen;

	key.cookie = bpf_get_socket_cookie(ctx);
	key.addr = *addr;
	key.port = port;
	seen = bpf_map_lookup_elem(&ms_udp_peers, &key);
	return seen && bpf_ktime_get_ns() - *seen <= cfg->answer_ttl_ns;
}

static __always_inline int decide_egress(struct bpf_sock_addr *ctx, const struct ms_addr *addr,
					 __be16 port, __u8 hook)
{
	struct ms_flow f = {};
	struct ms_config *cfg;
	struct ms_identity_value *idv;
	struct ms_policy_value *pv;
	void *cgroups, *identities, *policy;
	__u32 zero = 0, slot, mode, flags = MS_IDENT_F_ISOLATE_EGRESS | MS_IDENT_F_ISOLATE_INGRESS;

	cfg = bpf_map_lookup_elem(&ms_config, &zero);
	if (!cfg)
		return 0;
	slot = cfg->active_slot & 1;
	cgroups = bpf_map_lookup_elem(&ms_cgroups, &slot);
	identities = bpf_map_lookup_elem(&ms_identities, &slot);
	policy = bpf_map_lookup_elem(&ms_policy, &slot);
	if (!cgroups || !identities || !policy) {
		/* Never attached without maps; if it happens, fail closed. */
		count(MS_CTR_NO_POLICY);
		return cfg->mode == MS_MODE_MONITOR;
	}

	f.addr = *addr;
	f.port = port;
	f.protocol = proto_norm(ctx->protocol);
	f.direction = MS_DIR_EGRESS;
	f.hook = hook;
	f.generation = cfg->generation;
	f.subject = socket_identity(cgroups, ctx->sk, &f.cgroup_id);
	mode = cfg->mode;
	if (f.subject == MS_IDENTITY_PENDING) {
		/* A workload may be starting in a cgroup we have not classified
		 * yet: fail closed for the few ms until we have. */
		f.peer = peer_identity(cgroups, addr, port, f.protocol);
		f.verdict = MS_VERDICT_DENY;
		f.reason = MS_REASON_PENDING;
		goto refuse;
	}
	if (f.subject < MS_IDENTITY_FIRST_WORKLOAD)
		return 1;

	idv = bpf_map_lookup_elem(identities, &f.subject);
	if (idv) {
		flags = idv->flags;
		if (idv->mode != MS_MODE_INHERIT)
			mode = idv->mode;
	}

	if (f.protocol == MS_PROTO_UDP && udp_answer(ctx, cfg, addr, port)) {
		count(MS_CTR_UDP_ANSWERS);
		if (cfg->flags & MS_CONFIG_F_LOG_ALLOWED) {
			f.peer = peer_identity(cgroups, addr, port, f.protocol);
			f.verdict = MS_VERDICT_ALLOW;
			f.reason = MS_REASON_UDP_ANSWER;
			emit_event(&f);
		}
		return 1;
	}

	f.peer = peer_identity(cgroups, addr, port, f.protocol);
	pv = policy_lookup(policy, f.subject, f.peer, MS_DIR_EGRESS, f.protocol, port);
	if (pv) {
		f.verdict = pv->verdict;
		f.rule_id = pv->rule_id;
		f.reason = MS_REASON_RULE;
	} else if (flags & MS_IDENT_F_ISOLATE_EGRESS) {
		f.verdict = MS_VERDICT_DENY;
		f.rule_id = MS_RULE_NONE;
		f.reason = MS_REASON_DEFAULT_DENY;
	} else {
		f.verdict = MS_VERDICT_ALLOW;
		f.reason = MS_REASON_NOT_ISOLATED;
	}

	if (f.reason == MS_REASON_RULE || f.reason == MS_REASON_DEFAULT_DENY)
		count_rule(f.rule_id);

	if (f.verdict == MS_VERDICT_ALLOW) {
		count(MS_CTR_ALLOWED);
		if (cfg->flags & MS_CONFIG_F_LOG_ALLOWED)
			emit_event(&f);
		return 1;
	}
refuse:
	if (mode == MS_MODE_MONITOR) {
		f.verdict = MS_VERDICT_AUDIT;
		count(MS_CTR_AUDITED);
		emit_event(&f);
		return 1;
	}
	count(MS_CTR_DENIED);
	emit_event(&f);
	return 0;
}

#endif /* MICROSEG_BPF_LIB_DECIDE_H */
