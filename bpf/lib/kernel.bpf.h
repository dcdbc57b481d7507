/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one piece of kernel-internal state microseg reads: the cgroup a
 * socket was created in.
 *
 * The kernel fixes it in sk->sk_cgrp_data when the socket is allocated,
 * from the creating task, and never changes it when the process moves or
 * the fd is passed to another cgroup. bpf_sk_cgroup_id() returns it, but
 * sock_addr programs (connect, sendmsg) may not call that helper; reading
 * the field through bpf_rdonly_cast() (a kfunc every program type has, since
 * 6.2) works everywhere and costs a few loads instead of a per-socket
 * sk_storage allocation at socket creation.
 *
 * The structs below are CO-RE "flavors" (the ___ms suffix is ignored when
 * libbpf matches them against the running kernel's BTF): only the fields
 * used are declared and their offsets are relocated at load, so no
 * vmlinux.h is needed and no kernel layout is hard-coded. Reads through an
 * untrusted pointer fault to 0, never crash.
 */
#ifndef MICROSEG_BPF_LIB_KERNEL_H
#define MICROSEG_BPF_LIB_KERNEL_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct kernfs_node___ms {
	__u64 id;
} __attribute__((preserve_access_index));

struct cgroup___ms;

struct cgroup_subsys_state___ms {
	struct cgroup___ms *cgroup;
	struct cgroup_subsys_state___ms *parent;
} __attribute__((preserve_access_index));

struct cgroup___ms {
	struct cgroup_subsys_state___ms self;
	int level;                        /* the hierarchy's root is 0 */
	struct kernfs_node___ms *kn;
	struct cgroup___ms *ancestors[];  /* [0..level]: [i] is at level i */
} __attribute__((preserve_access_index));

struct sock_cgroup_data___ms {
	struct cgroup___ms *cgroup;
} __attribute__((preserve_access_index));

struct sock___ms {
	struct sock_cgroup_data___ms sk_cgrp_data;
} __attribute__((preserve_access_index));

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/* The cgroup `sk` was created in. */
static __always_inline struct cgroup___ms *sk_cgroup(const void *sk)
{
	struct sock___ms *s = bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct sock___ms));

	return s->sk_cgrp_data.cgroup;
}

/* Its id, as bpf_get_current_cgroup_id() / name_to_handle_at() give it. */
static __always_inline __u64 cgroup_id_of(struct cgroup___ms *cgrp)
{
	return cgrp->kn->id;
}

/* Its ancestor at `level` (0 <= level <= cgrp->level; the caller checks):
 * one load, however deep. A variable index is not allowed into a BTF
 * pointer, so the slot's address is computed and read through a struct
 * whose first field is a cgroup pointer (a css: its `cgroup`). */
static __always_inline struct cgroup___ms *cgroup_ancestor(struct cgroup___ms *cgrp, __u32 level)
{
	__u64 slot = (__u64)cgrp + bpf_core_field_offset(struct cgroup___ms, ancestors) +
		     (__u64)level * sizeof(void *);
	struct cgroup_subsys_state___ms *holder;

	holder = bpf_rdonly_cast((void *)(slot - bpf_core_field_offset(struct cgroup_subsys_state___ms, cgroup)),
				 bpf_core_type_id_kernel(struct cgroup_subsys_state___ms));
	return holder->cgroup;
}

/* Its level in the hierarchy. */
static __always_inline __u32 cgroup_level(struct cgroup___ms *cgrp)
{
	return (__u32)cgrp->level;
}

/* Its parent (NULL for the hierarchy's root). */
static __always_inline struct cgroup___ms *cgroup_parent(struct cgroup___ms *cgrp)
{
	struct cgroup_subsys_state___ms *css = cgrp->self.parent;

	return css ? css->cgroup : NULL;
}

#endif /* MICROSEG_BPF_LIB_KERNEL_H */
