// Pins the kernel<->userspace ABI (bpf/abi.h): a change that moves a field
// fails here, on purpose, so it is made deliberately (bump MS_ABI_VERSION).
#include <gtest/gtest.h>

#include <cstddef>
#include <iterator>

#include "bpf/abi.h"

#define PIN(type, size) static_assert(sizeof(type) == (size), #type " size changed")
#define AT(type, field, off) static_assert(offsetof(type, field) == (off), #type "." #field " moved")

PIN(struct ms_config, 72);
AT(struct ms_config, fqdn_min_ttl_s, 52);
AT(struct ms_config, fqdn_max_ttl_s, 64);
AT(struct ms_config, tai_offset_ns, 56);
AT(struct ms_config, wire_key_id, 48);
AT(struct ms_config, active_slot, 0);
AT(struct ms_config, mode, 4);
AT(struct ms_config, generation, 8);
AT(struct ms_config, flags, 16);
AT(struct ms_config, abi_version, 20);
AT(struct ms_config, answer_ttl_ns, 24);
AT(struct ms_config, root_cgroup_id, 32);
AT(struct ms_config, host_netns_cookie, 40);

PIN(struct ms_fqdn_name_key, 16);
PIN(struct ms_fqdn_name_value, 8 + MS_FQDN_TEXT);
PIN(struct ms_fqdn_binding_key, 24);
PIN(struct ms_fqdn_bound, 24);
AT(struct ms_fqdn_bound, peer, 16);
PIN(struct ms_fqdn_binding_value, 24 * MS_FQDN_SLOTS);

PIN(struct ms_cgroup_value, 8);
AT(struct ms_cgroup_value, flags, 4);
AT(struct ms_cgroup_value, mode, 5);
AT(struct ms_cgroup_value, isolation, 6);
PIN(struct ms_policy_exact_key, 12);
AT(struct ms_policy_exact_key, peer, 4);
AT(struct ms_policy_exact_key, direction, 8);
AT(struct ms_policy_exact_key, port, 10);
PIN(struct ms_identity_value, 8);
AT(struct ms_identity_value, flags, 4);

PIN(struct ms_policy_key, 16);
AT(struct ms_policy_key, prefixlen, 0);
AT(struct ms_policy_key, subject, 4);
AT(struct ms_policy_key, peer, 8);
AT(struct ms_policy_key, direction, 12);
AT(struct ms_policy_key, protocol, 13);
AT(struct ms_policy_key, port, 14);
PIN(struct ms_policy_value, 8);

PIN(struct ms_addr, 16);
PIN(struct ms_ipcache_key, 20);
AT(struct ms_ipcache_key, addr, 4);
PIN(struct ms_ipcache_value, 16);
AT(struct ms_ipcache_value, flags, 4);
AT(struct ms_ipcache_value, netns_cookie, 8);

PIN(struct ms_sock_state, 24);
AT(struct ms_sock_state, peer_cgroup, 8);
AT(struct ms_sock_state, since_ns, 16);

// The wire option fills exactly the 20 bytes Linux leaves on a SYN.
PIN(struct ms_wire_opt, MS_WIRE_OPT_LEN);
AT(struct ms_wire_opt, exid, 2);
AT(struct ms_wire_opt, key_id, 5);
AT(struct ms_wire_opt, time, 6);
AT(struct ms_wire_opt, identity, 8);
AT(struct ms_wire_opt, tag, 12);
PIN(struct ms_wire_mac_input, 48);
AT(struct ms_wire_mac_input, dst, 16);
AT(struct ms_wire_mac_input, sport, 32);
AT(struct ms_wire_mac_input, identity, 36);
AT(struct ms_wire_mac_input, exid, 40);
AT(struct ms_wire_mac_input, time, 44);
PIN(struct ms_wire_key, 24);
AT(struct ms_wire_key, flags, 16);
PIN(struct ms_sock_record, 72);
AT(struct ms_sock_record, cgroup_id, 8);
AT(struct ms_sock_record, local, 16);
AT(struct ms_sock_record, remote, 32);
AT(struct ms_sock_record, local_port, 48);
AT(struct ms_sock_record, protocol, 52);
AT(struct ms_sock_record, destroyed, 55);
AT(struct ms_sock_record, destroy_error, 56);
AT(struct ms_sock_record, since_ns, 64);

PIN(struct ms_remote_listener_key, 24);
AT(struct ms_remote_listener_key, port, 16);
AT(struct ms_remote_listener_key, protocol, 18);
PIN(struct ms_remote_listener_value, 8);
PIN(struct ms_udp_flow_key, 32);
AT(struct ms_udp_flow_key, addr, 8);
AT(struct ms_udp_flow_key, port, 24);
PIN(struct ms_udp_flow_value, 40);
AT(struct ms_udp_flow_value, heard_ns, 8);
AT(struct ms_udp_flow_value, ingress_gen, 24);
AT(struct ms_udp_flow_value, peer_cgroup, 32);
PIN(struct ms_grant_key, 12);
AT(struct ms_grant_key, peer, 4);
AT(struct ms_grant_key, direction, 8);
AT(struct ms_grant_key, protocol, 9);
AT(struct ms_grant_key, port, 10);
PIN(struct ms_grant_value, 16);
AT(struct ms_grant_value, grant_id, 8);
AT(struct ms_event, in_edge, 90);
PIN(struct ms_edge_key, 20);
AT(struct ms_edge_key, peer, 4);
AT(struct ms_edge_key, rule_id, 8);
AT(struct ms_edge_key, port, 12);
AT(struct ms_edge_key, direction, 14);
AT(struct ms_edge_key, protocol, 15);
AT(struct ms_edge_key, verdict, 16);
AT(struct ms_edge_key, reason, 17);
AT(struct ms_edge_key, peer_via, 18);
AT(struct ms_edge_key, _pad0, 19);
PIN(struct ms_edge_value, 48);
AT(struct ms_edge_value, first_ns, 8);
AT(struct ms_edge_value, last_ns, 16);
AT(struct ms_edge_value, event_ns, 24);
AT(struct ms_edge_value, addr, 32);
static_assert(MS_CONFIG_F_BENCH_NO_EDGES != MS_CONFIG_F_LOG_ALLOWED, "config flags overlap");

PIN(struct ms_event, 120);
AT(struct ms_event, fqdn_name, 112);
AT(struct ms_event, src_cgroup_id, 8);
AT(struct ms_event, dst_cgroup_id, 16);
AT(struct ms_event, generation, 24);
AT(struct ms_event, pid, 32);
AT(struct ms_event, src_identity, 36);
AT(struct ms_event, rule_id, 44);
AT(struct ms_event, src_addr, 48);
AT(struct ms_event, dst_addr, 64);
AT(struct ms_event, src_port, 80);
AT(struct ms_event, dst_port, 82);
AT(struct ms_event, reason, 88);
AT(struct ms_event, peer_via, 89);
AT(struct ms_event, comm, 96);

TEST(AbiLayout, PolicyPrefixCoversTheKeyData) {
  EXPECT_EQ(MS_POLICY_PREFIX_FULL, 8 * (sizeof(struct ms_policy_key) - sizeof(__u32)));
  EXPECT_EQ(MS_POLICY_PREFIX_FIXED + 16, MS_POLICY_PREFIX_FULL);
}

TEST(AbiLayout, ReservedIdentitiesAreBelowWorkloads) {
  EXPECT_LT(MS_IDENTITY_UNMANAGED, MS_IDENTITY_FIRST_WORKLOAD);
  EXPECT_LT(MS_IDENTITY_PENDING, MS_IDENTITY_FIRST_WORKLOAD);
  EXPECT_LT(MS_IDENTITY_MULTICAST, MS_IDENTITY_FIRST_WORKLOAD);
  EXPECT_LT(MS_IDENTITY_UNATTRIBUTED, MS_IDENTITY_FIRST_WORKLOAD);
  // Reserved identities are distinct.
  const unsigned reserved[] = {MS_IDENTITY_HOST, MS_IDENTITY_WORLD, MS_IDENTITY_UNMANAGED, MS_IDENTITY_PENDING,
                               MS_IDENTITY_MULTICAST, MS_IDENTITY_UNATTRIBUTED};
  for (size_t i = 0; i < std::size(reserved); i++) {
    for (size_t j = i + 1; j < std::size(reserved); j++) EXPECT_NE(reserved[i], reserved[j]);
  }
  EXPECT_LT(MS_IDENTITY_FIRST_WORKLOAD, MS_IDENTITY_FIRST_EXTERNAL);
  EXPECT_EQ(MS_IDENTITY_ANY, 0u);
}

TEST(AbiLayout, IpcacheKeyIsAnLpmKey) {
  // LPM trie keys start with a u32 prefix length over the data after it.
  EXPECT_EQ(offsetof(struct ms_ipcache_key, prefixlen), 0u);
  EXPECT_EQ(8 * (sizeof(struct ms_ipcache_key) - sizeof(__u32)), 128u);
}
