/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Test-only ABI of bpf/verdict_test.bpf.c: one verdict case in, what the
 * datapath's verdict code made of it out (tests/e2e/verdict_table_test.cpp
 * compares it with the userspace evaluator). Not part of the daemon's ABI
 * (bpf/abi.h).
 */
#ifndef MICROSEG_BPF_VERDICT_TEST_H
#define MICROSEG_BPF_VERDICT_TEST_H

#include "bpf/abi.h"

struct ms_verdict_case {
	/* in */
	__u64 subject_cgroup;  /* a cgroup id with an entry in ms_cgroups */
	struct ms_addr peer_addr; /* by_addr: the peer is this remote address */
	__u32 peer;            /* !by_addr: the peer's identity */
	__be16 port;           /* the policy port (network order) */
	__u8 direction;        /* enum ms_direction */
	__u8 protocol;         /* MS_PROTO_TCP | MS_PROTO_UDP */
	__u8 by_addr;
	__u8 _pad0[7];
	/* out */
	__s32 rc;              /* 0; -1 no generation; -2 no entry for the cgroup */
	__u32 runs;            /* incremented per run: the result is this run's */
	__u32 subject;         /* the subject's identity (its cgroup entry's) */
	__u32 resolved_peer;   /* the peer's identity (by_addr: from the ipcache) */
	__u32 rule_id;
	__u8 verdict;
	__u8 reason;
	__u8 _pad1[2];
};

#endif /* MICROSEG_BPF_VERDICT_TEST_H */
