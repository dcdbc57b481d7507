/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Every map of microseg (every header that uses one includes this). Layouts are in
 * abi.h; sizes are defaults the daemon may change before load.
 *
 * Policy-derived state lives in pairs of inner maps (slot 0/1) behind
 * ARRAY_OF_MAPS: the daemon fills the inactive slot completely, then flips
 * ms_config.active_slot with one write, so a verdict sees either the whole
 * old generation or the whole new one, never a mix.
 */
#ifndef MICROSEG_BPF_LIB_MAPS_H
#define MICROSEG_BPF_LIB_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpf/abi.h"
#include "bpf/lib/dns.bpf.h"

/* The daemon pins every map of this object (after attach) and a restarted
 * daemon adopts them, but for the ones tagged MS_PER_RUN: their content
 * means nothing to the next run. userspace/datapath/bpf_object.h reads the
 * tag from the object's BTF: no list of names is kept anywhere else. */
#define MS_PER_RUN __attribute__((btf_decl_tag("microseg:per_run")))

/* Set by the daemon before load: cgroup level of the managed root (the
 * cgroup2 mount's root is level 0). */
const volatile __u32 ms_root_level = 0;
/* Size of ms_events in bytes, to decide when a reader wakeup is due. */
const volatile __u32 ms_ringbuf_bytes = MS_RINGBUF_BYTES;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ms_config);
} ms_config SEC(".maps");

/* Inner maps are declared by size, not BTF type: clang only emits a forward
 * declaration for types reached through __array(), which libbpf rejects. */

/* slot -> (cgroup id -> struct ms_cgroup_value: identity and its settings) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(map_flags, BPF_F_NO_PREALLOC);
		__uint(max_entries, MS_MAX_CGROUPS);
		__uint(key_size, sizeof(__u64));
		__uint(value_size, sizeof(struct ms_cgroup_value));
	});
} ms_cgroups SEC(".maps");

/* slot -> (struct ms_policy_exact_key -> struct ms_policy_value) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(map_flags, BPF_F_NO_PREALLOC);
		__uint(max_entries, MS_MAX_POLICY_ENTRIES);
		__uint(key_size, sizeof(struct ms_policy_exact_key));
		__uint(value_size, sizeof(struct ms_policy_value));
	});
} ms_policy SEC(".maps");

/* slot -> (struct ms_policy_key -> struct ms_policy_value), LPM: port ranges */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);
		__uint(map_flags, BPF_F_NO_PREALLOC);
		__uint(max_entries, MS_MAX_POLICY_ENTRIES);
		__uint(key_size, sizeof(struct ms_policy_key));
		__uint(value_size, sizeof(struct ms_policy_value));
	});
} ms_ranges SEC(".maps");

/* slot -> (struct ms_ipcache_key -> struct ms_ipcache_value), LPM */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);
		__uint(map_flags, BPF_F_NO_PREALLOC);
		__uint(max_entries, MS_MAX_IPCACHE);
		__uint(key_size, sizeof(struct ms_ipcache_key));
		__uint(value_size, sizeof(struct ms_ipcache_value));
	});
} ms_ipcache SEC(".maps");

/* ms_sockets: lib/sock_state.bpf.h (bpf/revoke.bpf.c reads it too) */
#include "bpf/lib/sock_state.bpf.h"

/* (address, port, protocol) of another node -> the workload listening there */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MS_MAX_REMOTE_LISTENERS);
	__type(key, struct ms_remote_listener_key);
	__type(value, struct ms_remote_listener_value);
} ms_remote_listeners SEC(".maps");

/* temporary access (abi.h: ms_grant_key): one map for every generation,
 * so a reload keeps it; pinned and adopted like the rest */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MS_MAX_GRANT_ENTRIES);
	__type(key, struct ms_grant_key);
	__type(value, struct ms_grant_value);
} ms_grants SEC(".maps");

/* observed edges (abi.h: ms_edge_key): one map for every generation, so a
 * reload keeps the counts; pinned and adopted like the rest. Preallocated:
 * a new edge's insert takes an element from a free list instead of
 * kmalloc in the verdict path, and a full map fails the insert (counted)
 * instead of evicting counts (no LRU: an evicted edge would lose them). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MS_MAX_EDGES);
	__type(key, struct ms_edge_key);
	__type(value, struct ms_edge_value);
} ms_edges SEC(".maps");

/* key id -> cluster key of the wire identity (abi.h: ms_wire_opt) */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MS_WIRE_MAX_KEYS);
	__type(key, __u32);
	__type(value, struct ms_wire_key);
} ms_wire_keys SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	/* per-CPU LRU lists: an insert takes no global lock (a new UDP flow
	 * inserts on both sides); lookups see every CPU's entries */
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__uint(max_entries, MS_MAX_UDP_FLOWS);
	__type(key, struct ms_udp_flow_key);
	__type(value, struct ms_udp_flow_value);
} ms_udp_flows SEC(".maps");

/* FQDN peers (abi.h: ms_fqdn_names): the patterns policies name, what
 * DNS answers bound, and the names that bound it. Pinned and adopted. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MS_MAX_FQDN_NAMES);
	__type(key, struct ms_fqdn_name_key);
	__type(value, struct ms_fqdn_name_value);
} ms_fqdn_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MS_MAX_FQDN_BINDINGS);
	__type(key, struct ms_fqdn_binding_key);
	__type(value, struct ms_fqdn_binding_value);
} ms_fqdn_bindings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MS_MAX_FQDN_TEXTS);
	__type(key, __u64);
	__type(value, struct ms_fqdn_text);
} ms_fqdn_texts SEC(".maps");

/* Trusted resolvers (abi.h: ms_fqdn_names): address -> 1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MS_MAX_FQDN_RESOLVERS);
	__type(key, struct ms_addr);
	__type(value, __u8);
} ms_fqdn_resolvers SEC(".maps");

/* The DNS parser's per-CPU scratch (lib/dns.bpf.h: too big for the stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ms_dns_state);
} ms_dns_scratch SEC(".maps") MS_PER_RUN;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MS_CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ms_counters SEC(".maps");

/* Rule ids are numbered per daemon run (abi.h): per run, never pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MS_MAX_RULES);
	__type(key, __u32);
	__type(value, __u64);
} ms_rule_hits SEC(".maps") MS_PER_RUN;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, MS_RINGBUF_BYTES);
} ms_events SEC(".maps");

#endif /* MICROSEG_BPF_LIB_MAPS_H */
