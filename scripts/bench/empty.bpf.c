/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Benchmark floor: the cheapest possible program on each hook microseg uses.
 * Every program only returns 1 (allow). scripts/bench.sh attaches them to a
 * throwaway cgroup of its own and compares the kernel's run_time_ns/run_cnt
 * of microseg's programs against these, measured in the same run.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("cgroup/connect4")
int empty_connect4(struct bpf_sock_addr *ctx) { return 1; }

SEC("cgroup/connect6")
int empty_connect6(struct bpf_sock_addr *ctx) { return 1; }

SEC("cgroup/sendmsg4")
int empty_sendmsg4(struct bpf_sock_addr *ctx) { return 1; }

SEC("cgroup/sendmsg6")
int empty_sendmsg6(struct bpf_sock_addr *ctx) { return 1; }

SEC("cgroup_skb/ingress")
int empty_ingress(struct __sk_buff *skb) { return 1; }
