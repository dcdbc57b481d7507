/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Test-only ABI of bpf/dns_test.bpf.c: what the kernel's DNS response
 * parser (lib/dns.bpf.h) made of the message a BPF_PROG_TEST_RUN ran
 * ms_dns_test on (tests/e2e/attacks_dns_test.cpp compares it with the
 * reference parser, userspace/fqdn/dns_response.h). Not part of the
 * daemon's ABI (bpf/abi.h).
 */
#ifndef MICROSEG_BPF_DNS_TEST_H
#define MICROSEG_BPF_DNS_TEST_H

#include "bpf/abi.h"

#define MS_DNS_TEST_CHAIN 33    /* MS_DNS_MAX_CHAIN */
#define MS_DNS_TEST_ADDRS 8     /* MS_DNS_MAX_ADDRS */
#define MS_DNS_TEST_OFFSET 28   /* the message follows an IPv4 and a UDP header */
#define MS_DNS_TEST_STARTS 64   /* MS_DNS_MAX_STARTS */

struct ms_dns_test_addr {
	struct ms_addr addr;
	__u32 ttl;
	__u32 _pad0;
	__u64 owner;            /* FNV-1a 64 of the owner's normal form */
};

struct ms_dns_test_result {
	__u32 runs;             /* incremented per run: the result is this run's */
	__u8 outcome;           /* enum ms_dns_outcome = fqdn::DnsOutcome */
	__u8 _pad0;
	__u16 id;
	__u16 qtype;
	__u16 records_seen;
	__u16 n_chain;
	__u16 n_addrs;
	__u16 dropped;
	__u16 _pad1;
	__u64 chain[MS_DNS_TEST_CHAIN];  /* hashes: the question's, then CNAME targets */
	struct ms_dns_test_addr addrs[MS_DNS_TEST_ADDRS];
	/* The question as lib/fqdn.bpf.h compares it with a policy's names,
	 * and the hash of its suffix from each label start after the first
	 * (what wildcards are looked up by). */
	__u16 qlen;
	__u16 n_starts;
	__u32 _pad2;
	char qtext[MS_FQDN_TEXT];
	__u64 suffix[MS_DNS_TEST_STARTS];
	__u16 suffix_at[MS_DNS_TEST_STARTS];
};

#endif /* MICROSEG_BPF_DNS_TEST_H */
