/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Test-only ABI of bpf/parse_test.bpf.c: what parse_pkt() made of the
 * packet a BPF_PROG_TEST_RUN ran ms_parse_test on
 * (tests/e2e/attacks_parse_test.cpp compares it with a reference parser).
 * Not part of the daemon's ABI (bpf/abi.h).
 */
#ifndef MICROSEG_BPF_PARSE_TEST_H
#define MICROSEG_BPF_PARSE_TEST_H

#include "bpf/abi.h"

struct ms_parse_result {
	__s32 rc;              /* parse_pkt(): 0, or -1 (no TCP/UDP header found) */
	__u32 runs;            /* incremented per run: the result is this run's */
	struct ms_addr src;    /* rc 0: the packet's addresses (IPv4 mapped) */
	struct ms_addr dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;            /* IPPROTO_* of the transport header */
	__u8 tcp_flags;
	__u8 v4;
	__u8 _pad0;
};

#endif /* MICROSEG_BPF_PARSE_TEST_H */
