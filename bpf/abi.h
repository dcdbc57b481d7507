/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * microseg kernel <-> userspace ABI.
 *
 * This is the ONLY header that describes data shared between the BPF programs
 * (bpf/<name>.bpf.c) and the daemon (userspace/). Both sides include it; nothing
 * here may be mirrored by hand elsewhere. tests/unit/abi_layout_test.cpp pins
 * every size and offset, so a change here that moves a field fails the build's
 * tests until the layout test is updated on purpose.
 *
 * Rules for every struct:
 *  - fixed-width types only, explicit padding, no implicit holes;
 *  - userspace value-initialises keys (`Key k{}`): hash and LPM keys compare
 *    raw bytes, padding included.
 *
 * Addresses are always stored as 16-byte IPv6; IPv4 (and IPv4-mapped IPv6,
 * ::ffff:a.b.c.d, which is judged exactly like IPv4) is stored mapped:
 * 00..00 ff ff a b c d.
 */
#ifndef MICROSEG_BPF_ABI_H
#define MICROSEG_BPF_ABI_H

#include <linux/types.h>

/* Bump when any struct or map below changes incompatibly (pinned state of an
 * older layout is then replaced, see the daemon's adoption logic). */
#define MS_ABI_VERSION 10

/* ---- identities ------------------------------------------------------ */
/*
 * Numeric identities. 0 is the wildcard "any peer" in policy keys and never
 * an identity of anything. 1..255 are reserved; workload identities (one per
 * distinct label set) start at MS_IDENTITY_FIRST_WORKLOAD.
 */
#define MS_IDENTITY_ANY            0u
#define MS_IDENTITY_HOST           1u   /* this host, outside the managed root */
#define MS_IDENTITY_WORLD          2u   /* any non-local address without identity */
#define MS_IDENTITY_UNMANAGED      3u   /* cgroup under the root matching no workload */
#define MS_IDENTITY_PENDING        4u   /* new cgroup not classified yet, that may
                                           match a workload pattern: fail closed */
#define MS_IDENTITY_MULTICAST      5u   /* a broadcast or multicast destination
                                           (224/4, 255.255.255.255, a subnet's
                                           broadcast address, ff00::/8): reaches
                                           every local receiver, so it is never a
                                           unicast peer; no rule names it (policy
                                           has no reserved name for it yet), so
                                           only rules for any peer allow it */
#define MS_IDENTITY_UNATTRIBUTED   6u   /* a packet sent by a socket of this netns
                                           (it came over loopback) whose socket the
                                           kernel's lookup cannot find: bound to
                                           another device, or closed meanwhile. No
                                           rule names it: fail closed */
#define MS_IDENTITY_FIRST_WORKLOAD 256u
/* Identities of remote address ranges (the ipcache: `External` objects and
 * inline `cidr` peers) start here; below it are workloads. */
#define MS_IDENTITY_FIRST_EXTERNAL (1u << 24)
/* FQDN peers (`{fqdn: NAME}`, one per pattern a policy names) start here:
 * above every range identity, so the datapath looks one up as itself, then
 * as world, like a range (see ms_fqdn_bindings). */
#define MS_IDENTITY_FIRST_FQDN     0xf0000000u

/* ---- enums ------------------------------------------------------------ */
enum ms_mode {
	MS_MODE_INHERIT = 0,   /* per-identity: use the global mode */
	MS_MODE_MONITOR = 1,   /* would-deny passes, logged as audit */
	MS_MODE_ENFORCE = 2,   /* would-deny refused (EPERM) / dropped */
};

enum ms_verdict {
	MS_VERDICT_ALLOW = 0,
	MS_VERDICT_DENY  = 1,
	MS_VERDICT_AUDIT = 2,  /* events only: deny computed, passed in monitor */
	/* Flow records only (userspace, README "Revocation"): an established
	 * connection a new generation no longer allows, destroyed (REVOKED) or,
	 * its side in monitor mode, left alone (WOULD_REVOKE). */
	MS_VERDICT_REVOKED      = 3,
	MS_VERDICT_WOULD_REVOKE = 4,
};

enum ms_direction {
	MS_DIR_EGRESS  = 0,
	MS_DIR_INGRESS = 1,
};

/* IANA protocol numbers, as in struct bpf_sock::protocol. */
#define MS_PROTO_TCP 6
#define MS_PROTO_UDP 17
/* A socket protocol the datapath does not police: ICMP echo ("ping")
 * sockets, out of scope (neither their connect() nor their sendto() is
 * judged). Any other protocol but TCP, MPTCP and UDP (UDP-Lite, SCTP, ...)
 * of a governed socket is refused (counter MS_CTR_UNSUPPORTED_PROTO). */
#define MS_PROTO_UNPOLICED 0
#define MS_PROTO_REFUSED   255

/* Which hook produced an event (for the flow log and debugging). */
enum ms_hook {
	MS_HOOK_CONNECT4 = 1,
	MS_HOOK_CONNECT6 = 2,
	MS_HOOK_SENDMSG4 = 3,
	MS_HOOK_SENDMSG6 = 4,
	MS_HOOK_INGRESS  = 5,
};

/* Reason attached to a verdict (why the verdict was reached). */
enum ms_reason {
	MS_REASON_RULE         = 0, /* a policy entry matched: rule_id names it */
	MS_REASON_DEFAULT_DENY = 1, /* no entry: zero-trust default */
	MS_REASON_UDP_ANSWER   = 2, /* UDP answer/reply to a recent exchange */
	MS_REASON_NOT_ISOLATED = 3, /* subject not isolated in this direction */
	MS_REASON_NO_POLICY    = 4, /* policy maps missing: fail closed */
	MS_REASON_PENDING      = 5, /* subject cgroup not classified yet: fail closed */
	MS_REASON_WIRE_INVALID = 6, /* a SYN's wire identity failed verification:
	                               dropped whatever the policy (audit in monitor) */
	MS_REASON_GRANT        = 7, /* no entry, but an unexpired grant (ms_grants):
	                               rule_id is the grant id */
};

/* How the other end of a flow was identified (ms_event.peer_via). */
enum ms_peer_via {
	MS_PEER_VIA_ADDRESS = 0, /* its address (ipcache), or a reserved identity */
	MS_PEER_VIA_SOCKET  = 1, /* its socket, looked up in this netns */
	MS_PEER_VIA_WIRE    = 2, /* the verified wire identity of its SYN */
	MS_PEER_VIA_FQDN    = 3, /* a name the subject resolved (ms_fqdn_bindings) */
};

/* Rule id 0 means "no rule" (default deny); ids are stable per
 * (policy name, direction, rule index) for the daemon's lifetime. */
#define MS_RULE_NONE 0u

/* ---- config: ms_config (ARRAY, 1 entry) ------------------------------- */
#define MS_CONFIG_F_LOG_ALLOWED (1u << 0) /* emit events for allows too */
/* scripts/bench.sh only (the daemon never sets it, and writes its own
 * flags over it): judged flows skip ms_edges and are logged as before
 * edges (an event per denial and audit), the baseline of the edge update's
 * cost. */
#define MS_CONFIG_F_BENCH_NO_EDGES (1u << 1)

struct ms_config {
	__u32 active_slot;    /* 0|1: which policy/cgroup slot is live */
	__u32 mode;           /* enum ms_mode (global, never INHERIT) */
	__u64 generation;     /* policy generation in the active slot */
	__u32 flags;          /* MS_CONFIG_F_* */
	__u32 abi_version;    /* MS_ABI_VERSION of the daemon that wrote it */
	__u64 answer_ttl_ns;  /* how long a heard UDP peer may be answered */
	__u64 root_cgroup_id; /* cgroup the programs are attached to; a restarted
	                         daemon adopts pinned state only for the same root */
	__u64 host_netns_cookie; /* network namespace of the daemon ("this host") */
	__u32 wire_key_id;    /* cluster key that signs the wire identity of
	                         this node's SYNs (ms_wire_keys); 0: send none */
	__u32 fqdn_min_ttl_s; /* a DNS answer's TTL is raised to this ... */
	__s64 tai_offset_ns;  /* CLOCK_TAI - CLOCK_MONOTONIC, as the daemon last
	                         read it: the wire identity's time is the coarse
	                         monotonic clock plus this (a fraction of the
	                         cost of bpf_ktime_get_tai_ns(); the offset
	                         moves only when the clock is stepped) */
	__u32 fqdn_max_ttl_s; /* ... and lowered to this (`--fqdn-min-ttl`,
	                         `--fqdn-max-ttl`; ms_fqdn_bindings) */
	__u32 _pad1;
};

/* ---- cgroup -> identity: ms_cgroups_<slot> (inner HASH) --------------- */
/* key: __u64 cgroup id (kernfs id, as bpf_get_current_cgroup_id()).
 *
 * The daemon writes an entry for EVERY cgroup under the root it has seen,
 * carrying its identity AND that identity's settings (mode, isolation,
 * whether it has port ranges), so a verdict needs one lookup to know its
 * subject. A cgroup without an entry (created a moment ago) resolves
 * through its nearest ancestor that has one (the anchor):
 *   - anchor has MS_CGROUP_F_PENDING_CHILDREN (some Workload pattern could
 *     match a new cgroup below it, e.g. "machine.slice/<star>"):
 *     MS_IDENTITY_PENDING, judged fail-closed until the daemon classifies it
 *     (it watches cgroupfs with inotify, so that is milliseconds);
 *   - otherwise: the anchor's identity and settings (children inherit
 *     their workload).
 */
#define MS_CGROUP_F_PENDING_CHILDREN (1u << 0)

/* Per-identity settings (the compiler's output, copied by the daemon into
 * every cgroup entry of the identity). */
#define MS_IDENT_F_ISOLATE_EGRESS  (1u << 0) /* default-deny egress */
#define MS_IDENT_F_ISOLATE_INGRESS (1u << 1) /* default-deny ingress */
#define MS_IDENT_F_RANGES_EGRESS   (1u << 2) /* has port-range entries (ms_ranges) */
#define MS_IDENT_F_RANGES_INGRESS  (1u << 3)
#define MS_IDENT_F_FQDN            (1u << 4) /* egress rules name fqdn peers: DNS
                                                answers it receives bind names
                                                (ms_fqdn_bindings), which its
                                                remote destinations consult */

struct ms_identity_value {
	__u32 mode;           /* enum ms_mode; INHERIT = use ms_config.mode */
	__u32 flags;          /* MS_IDENT_F_* */
};

struct ms_cgroup_value {
	__u32 identity;       /* workload, or MS_IDENTITY_UNMANAGED */
	__u8  flags;          /* MS_CGROUP_F_* */
	__u8  mode;           /* the identity's ms_identity_value.mode */
	__u8  isolation;      /* the identity's ms_identity_value.flags */
	__u8  _pad0;
};

/* ---- policy: ms_policy_<slot> (inner HASH), ms_ranges_<slot> (inner LPM_TRIE) */
/*
 * A rule's ports are compiled into port intervals; an interval of one port
 * is an exact entry of ms_policy (a hash lookup), any wider interval is a
 * set of port prefixes in ms_ranges (an LPM trie; several times dearer per
 * lookup). ms_ranges is consulted only for subjects that have ranges in that
 * direction (MS_IDENT_F_RANGES_*).
 *
 * Range key layout (LPM data is compared MSB-first in memory order):
 *
 *   subject(32) | peer(32) | direction(8) | protocol(8) | port(16, big-endian)
 *
 * subject, peer, direction and protocol always match fully (prefixlen >= 80);
 * the remaining 0..16 bits are a port prefix, so an `endPort` range compiles
 * to a handful of entries. Peer MS_IDENTITY_ANY is the wildcard peer.
 *
 * Precedence is resolved by the compiler, not by the maps: per (subject,
 * direction, peer, protocol) the compiler emits DISJOINT port intervals, in
 * which deny already beats allow, so for one peer at most one entry of either
 * map matches a port; it folds wildcard-peer denies into every specific
 * peer's intervals, and `world` intervals into every remote-range identity
 * (>= MS_IDENTITY_FIRST_EXTERNAL) that has entries of its own (a range
 * identity without entries is world to the policy). The datapath takes the
 * first hit of:
 *
 *   1. {subject, peer,  dir, proto, port}   specific peer
 *   2. {subject, WORLD, dir, proto, port}   only for a remote-range identity
 *   3. {subject, ANY,   dir, proto, port}   wildcard peer
 *   4. miss -> default deny (if the subject is isolated in that direction)
 * each as ms_policy (exact port), then ms_ranges if the subject has ranges.
 *
 * Example: "allow to server TCP/8080" and "deny to ANY TCP/8000-8099"
 * compile to {S, server, E, TCP, 8000/15..} = deny (the deny was folded in),
 * {S, ANY, E, TCP, 8000-8099 prefixes} = deny; a connect to server:8080 hits
 * step 1 with deny: deny wins.
 *
 * The compiler hands out every entry as a ms_policy_key (an exact port is a
 * full-length prefix); the daemon files it into the map it belongs to.
 */
#define MS_POLICY_PREFIX_FIXED 80u  /* bits before the port */
#define MS_POLICY_PREFIX_FULL  96u

struct ms_policy_key {
	__u32 prefixlen;      /* LPM prefix length in bits of the data below */
	__u32 subject;        /* identity whose policy this is */
	__u32 peer;           /* the other end's identity, or MS_IDENTITY_ANY */
	__u8  direction;      /* enum ms_direction */
	__u8  protocol;       /* MS_PROTO_TCP | MS_PROTO_UDP */
	__be16 port;          /* peer port (egress) or local port (ingress) */
};

/* An exact-port entry (ms_policy): the range key without its prefix length. */
struct ms_policy_exact_key {
	__u32 subject;
	__u32 peer;
	__u8  direction;
	__u8  protocol;
	__be16 port;
};

struct ms_policy_value {
	__u32 rule_id;        /* rule that decided this entry */
	__u8  verdict;        /* MS_VERDICT_ALLOW | MS_VERDICT_DENY */
	__u8  _pad0[3];
};

/* ---- grants: ms_grants (HASH; pinned, NOT per slot) -------------------- */
/*
 * Temporary access (`microseg grant`): the flow {subject, peer, dir, proto,
 * port} passes until expires_ns, read by the datapath itself on the coarse
 * monotonic clock (bpf_ktime_get_coarse_ns), so a grant lapses on time
 * whether or not the daemon runs. Consulted ONLY where the policy lookup
 * found no entry and the subject is isolated (step 4's default deny): an
 * explicit deny still wins, and a flow a rule allows pays nothing for
 * grants. One grant writes an entry per port (ranges are capped at
 * MS_GRANT_MAX_PORTS ports) on both sides: the caller's egress and the
 * callee's ingress. Not per generation: a reload never drops a grant; the
 * daemon rewrites the entries when a workload's identity changes and
 * removes expired ones (an expired entry is no grant meanwhile). Where two
 * grants cover one key the entry carries the later expiry.
 */
struct ms_grant_key {
	__u32 subject;        /* identity judged (the caller for egress) */
	__u32 peer;           /* the other end's identity */
	__u8  direction;      /* enum ms_direction */
	__u8  protocol;       /* MS_PROTO_TCP | MS_PROTO_UDP */
	__be16 port;          /* as ms_policy_exact_key.port */
};

struct ms_grant_value {
	__u64 expires_ns;     /* coarse CLOCK_MONOTONIC; passes while now < this */
	__u32 grant_id;       /* the grant (events: rule_id, reason GRANT) */
	__u32 _pad0;
};
#define MS_GRANT_MAX_PORTS 256u

/* ---- addresses --------------------------------------------------------- */
struct ms_addr {
	__u8 a[16];           /* IPv6, or IPv4 mapped (::ffff:a.b.c.d) */
};

/* ---- FQDN peers: ms_fqdn_names, ms_fqdn_bindings, ms_fqdn_texts -------- */
/*
 * `{fqdn: NAME}` peers (#27). A UDP DNS answer (source port 53) that
 * reaches a socket of a workload with MS_IDENT_F_FQDN as the answer to a
 * query that socket sent (a connected socket's reply, or an answer to a
 * recent exchange of ms_udp_flows) is parsed at ingress (lib/dns.bpf.h)
 * before the workload can read it. Its question's name is looked up in
 * ms_fqdn_names: the exact name, else the longest suffix a wildcard names
 * (`*.example.com`: one or more labels before "example.com"); a hit whose
 * text equals the name's (the hash only finds the entry) binds each A/AAAA
 * address on the question's CNAME chain, for this workload only:
 * {subject, address} -> {fqdn peer, expiry} (up to MS_FQDN_SLOTS peers
 * an address), the TTL clamped to [fqdn_min_ttl_s, fqdn_max_ttl_s]. An
 * egress flow of that workload to a remote address (world or a range
 * identity) with unexpired bindings is judged as each fqdn peer and as the
 * address's identity; a deny of any wins, else an allow of any
 * (policies/README.md, "FQDN peers").
 *
 * Only answers from a trusted resolver bind (ms_fqdn_resolvers: the
 * daemon's --fqdn-resolvers, by default the nameservers of the host's
 * /etc/resolv.conf): a workload allowed to ask any DNS server could
 * otherwise ask one it runs itself and bind any address to any name.
 *
 * ms_fqdn_names (HASH; pinned, not per slot: the daemon adds a generation's
 * patterns before it flips, removes gone ones after, and removes the
 * bindings of a peer it no longer has). Keys: exact names by the FNV-1a 64
 * hash of the normal form (as lib/dns.bpf.h hashes names); wildcard
 * suffixes by a polynomial hash (h = h * MS_FQDN_POLY + c over the suffix's
 * characters, from 0), which the kernel gets for every suffix of the
 * question from the prefix hashes at its label starts.
 */
#define MS_FQDN_POLY 0x100000001b3ULL
#define MS_FQDN_EXACT    0u
#define MS_FQDN_WILDCARD 1u
#define MS_FQDN_TEXT 256u    /* > 253 characters, the longest name */

struct ms_fqdn_name_key {
	__u64 hash;           /* see above */
	__u32 kind;           /* MS_FQDN_EXACT | MS_FQDN_WILDCARD */
	__u32 _pad0;
};

struct ms_fqdn_name_value {
	__u32 peer;           /* the fqdn peer (>= MS_IDENTITY_FIRST_FQDN) */
	__u32 len;            /* characters of text */
	char  text[MS_FQDN_TEXT]; /* the name, or the wildcard's suffix, normal form */
};

/* ms_fqdn_bindings (LRU_HASH; pinned: bindings outlive a daemon restart) */
struct ms_fqdn_binding_key {
	__u32 subject;        /* the workload that resolved the name */
	__u32 _pad0;
	struct ms_addr addr;  /* an address of the answer (IPv4 mapped) */
};

/* An address may stand for several names (a CDN, a shared VIP): each
 * slot is one fqdn peer's binding; a new peer takes an empty or expired
 * slot, else the one that expires first. */
#define MS_FQDN_SLOTS 4

struct ms_fqdn_bound {
	__u64 expires_ns;     /* coarse CLOCK_MONOTONIC; bound while now < this */
	__u64 name;           /* FNV-1a 64 of the question (ms_fqdn_texts) */
	__u32 peer;           /* the fqdn peer; 0: an empty slot */
	__u32 ttl_s;          /* the TTL as clamped */
};

struct ms_fqdn_binding_value {
	struct ms_fqdn_bound slot[MS_FQDN_SLOTS];
};

/* ms_fqdn_texts (LRU_HASH; pinned): question hash -> the name as resolved,
 * so flow records and `microseg fqdn` name what bound an address. */
struct ms_fqdn_text {
	char name[MS_FQDN_TEXT];
};

/* ---- ipcache: ms_ipcache_<slot> (inner LPM_TRIE) ------------------------ */
/*
 * Address -> identity of the other end, for every address that is not
 * loopback. Most specific prefix wins (LPM). Entries come from:
 *   - `External` objects and inline `cidr` peers (compiled per generation):
 *     identity >= MS_IDENTITY_FIRST_EXTERNAL, flags 0. The compiler splits
 *     overlapping ranges so that every prefix's identity stands for exactly
 *     the set of Externals/cidr peers containing it (`except` carves holes);
 *   - addresses of this host's network namespace: MS_IPCACHE_F_HOST,
 *     identity MS_IDENTITY_HOST, netns_cookie = the host netns;
 *   - addresses of a workload's own network namespace (a container):
 *     MS_IPCACHE_F_NETNS, identity = that workload, netns_cookie = its netns.
 *   For an address of the judging socket's own netns (flag HOST or NETNS
 *   and the same cookie) the peer is the socket found by lookup there, never
 *   the IP; the entry's identity is used when there is none.
 * A miss is MS_IDENTITY_WORLD.
 *
 * IPv4 is stored mapped, so an IPv4 a.b.c.d/n is prefixlen 96 + n over
 * ::ffff:a.b.c.d. IPv6 prefixes never cover the mapped range: the compiler
 * emits a ::ffff:0:0/96 boundary when an IPv6 prefix would (e.g. ::/0).
 */
#define MS_IPCACHE_F_HOST  (1u << 0) /* an address of the host netns */
#define MS_IPCACHE_F_NETNS (1u << 1) /* an address of a workload's own netns */
#define MS_IPCACHE_F_BROADCAST (1u << 2) /* the broadcast address of a subnet of
                                          the netns netns_cookie (identity
                                          MS_IDENTITY_MULTICAST there; another
                                          netns routes it as unicast: world) */

struct ms_ipcache_key {
	__u32 prefixlen;      /* 0..128 bits of addr */
	struct ms_addr addr;  /* bits past prefixlen are zero */
};
#define MS_IPCACHE_F_REMOTE_NODE (1u << 3) /* an address of another node of the
                                            cluster (identity: that node's, or
                                            a workload of its own netns there);
                                            for a node's host address, which of
                                            its workloads listens on a port is
                                            in ms_remote_listeners */

struct ms_ipcache_value {
	__u32 identity;       /* External/cidr, workload (F_NETNS) or HOST (F_HOST) */
	__u32 flags;          /* MS_IPCACHE_F_* */
	__u64 netns_cookie;   /* F_HOST/F_NETNS: netns owning the address, else 0 */
};

/* ---- cluster: ms_remote_listeners (HASH) ------------------------------- */
/*
 * In cluster mode, the listening sockets of the host-netns workloads of the
 * OTHER nodes (cluster/agent.h publishes them in etcd): a caller here that
 * connects or sends to (address, port, protocol) of a node reaches that
 * workload there, not "that node". Consulted only for a destination whose
 * ipcache entry has MS_IPCACHE_F_REMOTE_NODE; a miss is the node's identity.
 * Written entry by entry by the daemon as the cluster changes (each entry
 * is one atomic write; there is nothing to keep consistent between them).
 */
struct ms_remote_listener_key {
	struct ms_addr addr;  /* the node's address (v4 mapped) */
	__be16 port;
	__u8  protocol;       /* MS_PROTO_TCP | MS_PROTO_UDP */
	__u8  _pad0[5];
};

struct ms_remote_listener_value {
	__u32 identity;       /* the listening workload's cluster identity */
	__u32 _pad0;
};

/* ---- per-socket state: ms_sockets (SK_STORAGE) ------------------------ */
/* For connected sockets: a connected UDP socket's peer, and when each TCP
 * connection was established or UDP socket connected (the age a revocation
 * record gives). Nothing else about a socket needs state: its identity is
 * the cgroup the kernel fixed when the socket was created (and passing its
 * fd to another cgroup does not change it), and a local peer is found by
 * looking its socket up (bpf_sk_lookup_tcp|udp), never by bookkeeping of
 * binds. Read by bpf/revoke.bpf.c too (the same map, by its pin). */
#define MS_SOCK_F_CONNECTED (1u << 0) /* UDP connect() passed the egress check:
                                         datagrams from the connected peer are
                                         replies (the kernel delivers nothing
                                         else to a connected UDP socket) */

struct ms_sock_state {
	__u32 flags;            /* MS_SOCK_F_* */
	__u32 _pad0;
	__u64 peer_cgroup;      /* MS_SOCK_F_CONNECTED: what the connected peer is
	                           held to, as ms_udp_flow_value.peer_cgroup (a
	                           local peer's port may change hands) */
	__u64 since_ns;         /* CLOCK_MONOTONIC (coarse): TCP: when the
	                           connection was established (sockops
	                           ms_established, both ends); UDP: when connect()
	                           last passed. 0: not seen (a connection older
	                           than microseg's programs) */
};

/* ---- UDP exchanges: ms_udp_flows (LRU_HASH) ---------------------------- */
/*
 * What an unconnected UDP socket exchanged with a peer recently, so that
 * replies are not judged as new flows (a stateful firewall's conntrack,
 * per socket):
 *   - egress to P passes without a rule if the socket heard from P within
 *     ms_config.answer_ttl_ns (an answer);
 *   - ingress from P passes without a rule if the socket sent to P within
 *     the TTL (the answer to its request);
 *   - a flow a rule already allowed in the current generation is not judged
 *     again within the TTL (egress_gen / ingress_gen): established UDP flows
 *     cost one lookup (two for a peer of this netns: see peer_cgroup).
 * An exchange is the socket's (the key's cookie) with a peer address; a
 * local peer is also held to its socket's cgroup (peer_cgroup).
 * Timestamps (coarse CLOCK_MONOTONIC: tick resolution) are refreshed at
 * most every 100 ms per entry.
 */
struct ms_udp_flow_key {
	__u64 cookie;         /* socket cookie */
	struct ms_addr addr;  /* peer address */
	__be16 port;          /* peer port */
	__u8  _pad0[6];
};

struct ms_udp_flow_value {
	__u64 sent_ns;        /* last datagram to the peer that passed egress */
	__u64 heard_ns;       /* last datagram from the peer that passed ingress */
	__u64 egress_gen;     /* generation whose rules allowed sending (0: none) */
	__u64 ingress_gen;    /* generation whose rules allowed receiving (0: none) */
	__u64 peer_cgroup;    /* a peer of this netns: the creator cgroup of its
	                         socket when the exchange was judged
	                         (MS_UDP_PEER_NOBODY: none had the address then).
	                         Before a datagram passes by the entry, the socket
	                         now at the peer's address and port is looked up:
	                         another cgroup's socket (the port closed and
	                         taken, or shared with SO_REUSEADDR/REUSEPORT)
	                         does not inherit the exchange. 0: a peer of
	                         another host or netns, known by address only */
};
#define MS_UDP_PEER_REMOTE 0ull
#define MS_UDP_PEER_NOBODY (~0ull)

/* ---- the sockets of a netns: bpf/revoke.bpf.c (iter/tcp, iter/udp) ----- */
/*
 * A separate object (never attached to a cgroup, nothing pinned): the
 * daemon runs its iterators in a network namespace to list the sockets
 * there, one record per socket, or to destroy the sockets whose cookies it
 * put in ms_revoke_cookies (bpf_sock_destroy(): both ends see the
 * connection aborted). Which connections policy no longer allows is
 * decided in userspace, from the records.
 */
struct ms_sock_record {
	__u64 cookie;           /* bpf_get_socket_cookie() */
	__u64 cgroup_id;        /* the cgroup the socket was created in */
	struct ms_addr local;
	struct ms_addr remote;  /* :: for an unconnected socket */
	__be16 local_port;
	__be16 remote_port;
	__u8 protocol;          /* IPPROTO_TCP, IPPROTO_UDP */
	__u8 state;             /* BPF_TCP_* (UDP: BPF_TCP_ESTABLISHED when connected) */
	__u8 family;            /* AF_INET, AF_INET6 */
	__u8 destroyed;         /* destroy pass: bpf_sock_destroy() returned 0 */
	__s32 destroy_error;    /* destroy pass: its negative errno, else 0 */
	__u32 _pad0;
	__u64 since_ns;         /* ms_sock_state.since_ns of the socket (0: not
	                           known) */
};

/* ---- counters: ms_counters (PERCPU_ARRAY) ----------------------------- */
enum ms_counter {
	MS_CTR_ALLOWED = 0,     /* new flows allowed (rule, answer, ungoverned) */
	MS_CTR_DENIED,          /* refused in enforce mode */
	MS_CTR_AUDITED,         /* would-deny passed in monitor mode */
	MS_CTR_EVENTS_LOST,     /* ring buffer full: event dropped, counted */
	MS_CTR_UDP_ANSWERS,     /* UDP datagrams passed as answers/replies */
	MS_CTR_NO_POLICY,       /* verdict with no policy map: failed closed */
	MS_CTR_UNPARSED,        /* inbound packet without a TCP/UDP header we could
	                           find, to a governed socket: failed closed */
	MS_CTR_UNSUPPORTED_PROTO, /* a governed socket of a protocol not policed
	                           (UDP-Lite, SCTP, ...): refused at connect/sendmsg,
	                           dropped at ingress (passed in monitor) */
	MS_CTR_DEEP_CGROUP,     /* a socket whose cgroup is deeper below its nearest
	                           classified ancestor than the kernel walks
	                           (MS_MAX_CGROUP_DEPTH levels): failed closed */
	MS_CTR_UNATTRIBUTED,    /* a packet from a socket of this netns that the
	                           lookup cannot find (MS_IDENTITY_UNATTRIBUTED) */
	MS_CTR_MULTICAST,       /* flows to a broadcast/multicast destination judged
	                           (MS_IDENTITY_MULTICAST) */
	MS_CTR_WIRE_SENT,       /* SYNs that left with this node's wire identity */
	MS_CTR_WIRE_UNSENT,     /* SYNs to another node that had no room for it
	                           (a TFO cookie, MD5): sent without, judged there
	                           by address */
	MS_CTR_WIRE_VERIFIED,   /* SYNs from another node whose wire identity
	                           verified: judged by it */
	MS_CTR_WIRE_INVALID,    /* SYNs whose wire identity did not verify (tag,
	                           unknown or retired key, clock, identity out of
	                           range): dropped (passed in monitor mode) */
	MS_CTR_WIRE_ABSENT,     /* SYNs from another node's address without one:
	                           judged by address (a sender without wire
	                           identity, or a middlebox that strips options) */
	MS_CTR_GRANT_ALLOWED,   /* flows no rule allowed that a grant let through */
	MS_CTR_EDGES_FULL,      /* judged flows of a NEW edge that ms_edges had no
	                           room for: counted nowhere else, so each gets an
	                           event of its own (see ms_edges) */
	MS_CTR_FQDN_BOUND,      /* addresses bound to a name (ms_fqdn_bindings writes) */
	MS_CTR_FQDN_ENTRIES,    /* of which new (workload, address) entries: what the
	                           table holds, plus what the daemon removed, plus
	                           what its LRU evicted, adds up to this */
	MS_CTR_FQDN_UNNAMED,    /* DNS answers to an fqdn workload whose question no
	                           policy names (or too long to compare): nothing bound */
	MS_CTR_FQDN_MALFORMED,  /* DNS answers to an fqdn workload the parser refused
	                           (malformed, truncated, oversized, ...): nothing bound */
	MS_CTR_FQDN_JUDGED,     /* egress flows judged with a name's binding */
	MS_CTR_FQDN_UNTRUSTED,  /* DNS answers to an fqdn workload from an address
	                           that is not a trusted resolver
	                           (ms_fqdn_resolvers): nothing bound */
	MS_CTR_FQDN_DNS_UNSEEN, /* TCP connects of an fqdn workload to port 53 (DNS
	                           over TCP) or 853 (DNS over TLS): answers the
	                           kernel cannot read, which bind nothing */
	MS_CTR_MAX,
};

/* ---- rule hits: ms_rule_hits (PERCPU_ARRAY rule id -> __u64) ----------- */
/* Verdicts decided by each rule (index MS_RULE_NONE counts default denies).
 * Rule ids at or above MS_MAX_RULES are not counted. Not pinned: rule ids
 * are numbered per daemon run, so each run starts from zero. */
#define MS_MAX_RULES 65536u

/* ---- observed edges: ms_edges (HASH; pinned, NOT per slot) ------------- */
/*
 * Every judged flow (the verdict of step 4-5 in decide.bpf.h: allowed,
 * audited, denied; connect4/6, sendmsg4/6, ingress) adds one to the entry
 * of what decided it. A verdict depends on the key alone, so userspace can
 * judge an edge again against another policy set exactly (staged, diff).
 * count is added atomically (one entry shared by every CPU); the times are
 * the coarse monotonic clock (a tick), written only when they move.
 *
 * Events (ms_events, with pid/comm, addresses and the precise time) are
 * emitted only for a NEW edge, for a denial or audit whose other end's
 * address is not the one of the edge's last event, and otherwise at most
 * once per MS_EDGE_EVENT_INTERVAL_NS per edge: a flood is one event and an
 * exact count. The count is the edge's, never the events'.
 *
 * Not per generation: a reload keeps every count; pinned and adopted by a
 * restarted daemon like the other maps (rule ids and identities are the
 * run's: the daemon keeps names beside them). The daemon never deletes an
 * entry (a delete races with an increment). When the map is full a NEW
 * edge is not recorded: MS_CTR_EDGES_FULL counts it and every such flow
 * gets an event (nothing is lost silently; its count comes from events,
 * as before edges).
 */
struct ms_edge_key {
	__u32 subject;        /* identity judged (the caller for egress) */
	__u32 peer;           /* the other end's identity */
	__u32 rule_id;        /* rule, grant id (reason GRANT) or MS_RULE_NONE */
	__be16 port;          /* as ms_policy_exact_key.port */
	__u8  direction;      /* enum ms_direction */
	__u8  protocol;       /* MS_PROTO_TCP | MS_PROTO_UDP */
	__u8  verdict;        /* enum ms_verdict, after the mode (AUDIT) */
	__u8  reason;         /* enum ms_reason */
	__u8  peer_via;       /* enum ms_peer_via */
	__u8  _pad0;
};

struct ms_edge_value {
	__u64 count;          /* judged flows (atomic add) */
	__u64 first_ns;       /* coarse CLOCK_MONOTONIC of the first */
	__u64 last_ns;        /* of the latest (tick resolution) */
	__u64 event_ns;       /* when its last event was emitted */
	struct ms_addr addr;  /* the other end's address in its last event (the
	                         destination for egress, the source for
	                         ingress): a denial or audit from or to another
	                         address is an event at once, whatever the
	                         interval (who scans, from where, is news) */
};
/* At most one event per edge per interval (the first one at once). */
#define MS_EDGE_EVENT_INTERVAL_NS 1000000000ull

/* ---- verdict events: ms_events (RINGBUF) ------------------------------ */
/* Oriented like the flow: src is the side that opened it, dst the side it
 * was opened to, whichever side judged it (`direction`: egress = judged at
 * the source's connect/sendmsg, ingress = judged as it arrived at dst). */
struct ms_event {
	__u64 timestamp_ns;   /* bpf_ktime_get_ns() (CLOCK_MONOTONIC) */
	__u64 src_cgroup_id;  /* creator cgroup of the source socket, 0 if not
	                         local (ingress from another host/netns) */
	__u64 dst_cgroup_id;  /* creator cgroup of the destination socket, 0 if
	                         unknown (egress to a remote address) */
	__u64 generation;     /* policy generation that decided */
	__u32 pid;            /* egress: tgid of the caller; ingress: 0 */
	__u32 src_identity;
	__u32 dst_identity;
	__u32 rule_id;        /* MS_RULE_NONE for default deny */
	struct ms_addr src_addr; /* ingress: the packet's source; egress: zero */
	struct ms_addr dst_addr;
	__be16 src_port;      /* ingress: the packet's source port; egress: 0 */
	__be16 dst_port;
	__u8  protocol;       /* MS_PROTO_* */
	__u8  verdict;        /* enum ms_verdict */
	__u8  direction;      /* enum ms_direction: which side judged */
	__u8  hook;           /* enum ms_hook */
	__u8  reason;         /* enum ms_reason */
	__u8  peer_via;       /* enum ms_peer_via */
	__u8  in_edge;        /* 1: the flow is counted in ms_edges (its record's
	                         count comes from there, the event brings the
	                         details); 0: this event is its only count (a UDP
	                         answer logged, a full ms_edges) */
	__u8  _pad0[5];
	char  comm[16];       /* egress: current->comm; ingress: empty */
	__u64 fqdn_name;      /* egress to an address bound by a name: the name's
	                         hash (ms_fqdn_texts has its text); 0 otherwise */
};

/* ---- wire identity (cluster mode): ms_wire_keys (ARRAY key id -> key) ---- */
/*
 * A host-netns workload of node A arrives at node B from A's address; the
 * address can only say "node A". So A states the caller's identity on the
 * connection itself: a TCP option on the SYN of every connect() a workload
 * of A makes to another node's address (sockops), and B's ingress judges
 * that SYN by the claimed identity once the option's tag verifies.
 *
 * The option (RFC 6994 experimental option, kind 253, with an ExID), 20
 * bytes: Linux's own SYN options take 20 (MSS 4, SACK-permitted and
 * timestamps 12, window scale 3 + NOP), so it fits exactly in the 40 of a
 * TCP header; a SYN with less room (a TFO cookie, MD5) goes without.
 *
 *   kind=253 | len=20 | ExID (2) | version (1) | key id (1) | time (2) |
 *   identity (4) | tag (8)
 *
 * time: the low 16 bits of the sender's CLOCK_TAI in seconds; the receiver
 * takes the value nearest its own clock and accepts MS_WIRE_MAX_SKEW_S of
 * difference either way. tag: SipHash-2-4, keyed with the cluster key of
 * that id, over struct ms_wire_mac_input (48 bytes, the 64-bit tag stored
 * little-endian): the identity, the option's fields and the 4-tuple as the
 * receiver sees it, so a tag is worth nothing on another connection.
 */
#define MS_WIRE_OPT_KIND    253
#define MS_WIRE_OPT_LEN     20
#define MS_WIRE_EXID        0x4d53  /* "MS"; not IANA-assigned */
#define MS_WIRE_VERSION     1
#define MS_WIRE_MAX_KEYS    256     /* key ids 1..255; 0 is "none" */
#define MS_WIRE_MAX_SKEW_S  90

struct ms_wire_opt {
	__u8  kind;           /* MS_WIRE_OPT_KIND */
	__u8  len;            /* MS_WIRE_OPT_LEN */
	__be16 exid;          /* MS_WIRE_EXID */
	__u8  version;        /* MS_WIRE_VERSION */
	__u8  key_id;
	__be16 time;          /* CLOCK_TAI seconds, low 16 bits */
	__be32 identity;      /* the caller's cluster identity */
	__u8  tag[8];
};

/* What the tag covers. Addresses as in ms_addr (IPv4 mapped); ports and
 * identity in network order, as on the wire. */
struct ms_wire_mac_input {
	struct ms_addr src;   /* the SYN's source (the caller) */
	struct ms_addr dst;
	__be16 sport;
	__be16 dport;
	__be32 identity;
	__be16 exid;
	__u8  version;
	__u8  key_id;
	__be16 time;
	__u8  _pad0[2];
};

#define MS_WIRE_KEY_F_VALID (1u << 0) /* accepted on SYNs (current or previous) */

struct ms_wire_key {
	__u64 k0;             /* SipHash key: bytes 0..7 of the 128-bit key, LE */
	__u64 k1;             /* bytes 8..15, LE */
	__u32 flags;          /* MS_WIRE_KEY_F_* */
	__u32 _pad0;
};

/* ---- limits (defaults; the daemon may resize at load) ----------------- */
#define MS_MAX_POLICY_ENTRIES  (1u << 20)
#define MS_MAX_CGROUPS         65536u
#define MS_MAX_IDENTITIES      65536u
#define MS_MAX_UDP_FLOWS       65536u
#define MS_MAX_IPCACHE         (1u << 18)
#define MS_MAX_REMOTE_LISTENERS 65536u
#define MS_MAX_GRANT_ENTRIES   65536u
#define MS_MAX_FQDN_NAMES      16384u  /* patterns policies name */
#define MS_MAX_FQDN_BINDINGS   65536u  /* (workload, address) bound by a name (LRU) */
#define MS_MAX_FQDN_TEXTS      4096u   /* names that bound something (LRU) */
#define MS_MAX_FQDN_RESOLVERS  64u     /* trusted resolver addresses */
#define MS_MAX_EDGES           65536u  /* preallocated: ~7 MiB of kernel memory */
/* 2 MiB: ~15k events. The daemon's reader thread (datapath/event_spool.h)
 * drains it every 100 ms, and the kernel wakes it when the ring is a
 * quarter full (~3.8k events: ~13 ms of a 300k/s flood). Its data pages
 * are mapped twice in the daemon (a record that wraps reads contiguously)
 * and resident from the start: 4 MiB of RSS. */
#define MS_RINGBUF_BYTES       (2u << 20)
#define MS_MAX_CGROUP_DEPTH    32     /* ancestor walk bound below the root */

#endif /* MICROSEG_BPF_ABI_H */
