/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Identity resolution.
 *
 * A socket's identity is that of the cgroup that CREATED it (recorded by
 * cgroup/sock_create in ms_sockets), so passing an fd to a process in another
 * cgroup does not launder identity. A cgroup gets the identity of its own
 * entry in the active ms_cgroups slot or, if the daemon has not seen it yet
 * (created a moment ago), of its nearest ancestor that has an entry: the
 * "anchor", found by walking the creator's ancestors from the managed root
 * down. So a process in a brand-new child cgroup of a workload is that
 * workload from its first socket on.
 */
#ifndef MICROSEG_BPF_LIB_IDENTITY_H
#define MICROSEG_BPF_LIB_IDENTITY_H

/* Deepest ancestor-or-self of current's cgroup that has an identity entry,
 * or 0. Bounded by MS_MAX_CGROUP_DEPTH levels below the managed root. */
static __always_inline __u64 current_anchor(void *cgroups)
{
	__u64 anchor = 0;

	for (int i = 0; i < MS_MAX_CGROUP_DEPTH; i++) {
		__u64 id = bpf_get_current_ancestor_cgroup_id(ms_root_level + i);

		if (!id)
			break;
		if (bpf_map_lookup_elem(cgroups, &id))
			anchor = id;
	}
	return anchor;
}

static __always_inline __u32 cgroup_identity(void *cgroups, __u64 cgroup_id, __u64 anchor)
{
	struct ms_cgroup_value *v = bpf_map_lookup_elem(cgroups, &cgroup_id);

	if (v)
		return v->identity;
	if (anchor) {
		v = bpf_map_lookup_elem(cgroups, &anchor);
		if (v)
			return (v->flags & MS_CGROUP_F_PENDING_CHILDREN) ? MS_IDENTITY_PENDING
									 : v->identity;
	}
	return MS_IDENTITY_UNMANAGED;
}

/* Creator cgroup and identity of a socket. Sockets created before microseg
 * attached have no ms_sockets entry: fall back to the calling task's cgroup. */
static __always_inline __u32 socket_identity(void *cgroups, struct bpf_sock *sk, __u64 *cgroup_id)
{
	struct ms_sock_state *st = NULL;

	if (sk)
		st = bpf_sk_storage_get(&ms_sockets, sk, 0, 0);
	if (st) {
		*cgroup_id = st->cgroup_id;
		return cgroup_identity(cgroups, st->cgroup_id, st->anchor_cgroup_id);
	}
	*cgroup_id = bpf_get_current_cgroup_id();
	if (bpf_map_lookup_elem(cgroups, cgroup_id))
		return cgroup_identity(cgroups, *cgroup_id, 0);
	return cgroup_identity(cgroups, *cgroup_id, current_anchor(cgroups));
}

/* Identity of the local socket bound to (addr, port, proto): exact address
 * first, then the unspecified address of its family, then a dual-stack "::"
 * listener for IPv4. No owner under the managed root: MS_IDENTITY_HOST. */
static __always_inline __u32 local_owner_identity(void *cgroups, const struct ms_addr *addr,
						  __be16 port, __u8 proto)
{
	struct ms_bind_key key = {};
	struct ms_bind_value *b;
	__u32 *w = (__u32 *)key.addr.a;
	bool v4 = addr_is_v4(addr);

	key.addr = *addr;
	key.port = port;
	key.protocol = proto;
	b = bpf_map_lookup_elem(&ms_binds, &key);
	if (!b) {
		w[3] = 0; /* ::ffff:0.0.0.0 for IPv4, :: needs w[0..2] too */
		if (!v4) {
			w[0] = 0;
			w[1] = 0;
			w[2] = 0;
		}
		b = bpf_map_lookup_elem(&ms_binds, &key);
	}
	if (!b && v4) {
		w[2] = 0;
		b = bpf_map_lookup_elem(&ms_binds, &key);
	}
	if (!b)
		return MS_IDENTITY_HOST;
	return cgroup_identity(cgroups, b->cgroup_id, b->anchor_cgroup_id);
}

/* Identity of the other end of an egress flow. Local destinations are
 * identified by the owner of the listening socket, never by the IP. */
static __always_inline __u32 peer_identity(void *cgroups, const struct ms_addr *addr,
					   __be16 port, __u8 proto)
{
	if (addr_is_local(addr))
		return local_owner_identity(cgroups, addr, port, proto);
	return MS_IDENTITY_WORLD;
}

#endif /* MICROSEG_BPF_LIB_IDENTITY_H */
