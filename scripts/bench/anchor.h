/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one struct the benchmark's anchor program (empty.bpf.c) and the
 * measuring tool (bench_main.cpp) share: a rule of the two-lookup anchor.
 */
#ifndef MICROSEG_BENCH_ANCHOR_H
#define MICROSEG_BENCH_ANCHOR_H

#include <linux/types.h>

struct anchor_rule_key {
	__u32 identity;
	__u32 daddr; /* network order */
	__u16 dport; /* network order */
	__u16 pad;
};

#endif /* MICROSEG_BENCH_ANCHOR_H */
