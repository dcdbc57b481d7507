/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Wire identity (cluster mode; abi.h: ms_wire_opt): the caller's identity
 * stated on the SYN of a connection to another node, and verified there.
 *
 * Sender (sockops, bpf/microseg.bpf.c): at TCP_CONNECT_CB (the connect()
 * passed the egress hook: a refused one never gets here) a socket of a
 * workload in this host's network namespace connecting to another node's
 * address arms the header option callbacks of that one socket, which
 * reserve and write the option on its SYN (and a retransmitted SYN); they
 * are disarmed once the connection is established: no other packet pays
 * for them. Nothing is stored per socket: creating socket storage cost
 * more than the rest of the sender together (scripts/bench.sh section 6),
 * so the identity is looked up again when the option is written. A
 * workload with a network namespace of its own is known by its own
 * address, and behind NAT a signed 4-tuple would not verify: its SYNs go
 * without.
 *
 * Receiver (decide_ingress()): a SYN from another node's address is judged
 * by the identity its option claims once the tag verifies with a key of
 * ms_wire_keys; one that does not verify is dropped whatever the policy
 * (audited in monitor mode); one without the option is judged by address.
 *
 * The tag is SipHash-2-4 over struct ms_wire_mac_input (48 bytes: six
 * little-endian words, then the length word), the same function as
 * userspace/common/siphash.cpp (checked against the paper's vectors there,
 * and against this code end to end by the cluster e2e tests).
 */
#ifndef MICROSEG_BPF_LIB_WIRE_H
#define MICROSEG_BPF_LIB_WIRE_H

#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "bpf/abi.h"
#include "bpf/lib/addr.bpf.h"
#include "bpf/lib/events.bpf.h"
#include "bpf/lib/identity.bpf.h"
#include "bpf/lib/maps.bpf.h"
#include "bpf/lib/packet.bpf.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the wire identity's SipHash reads little-endian words: add byte swaps for this target"
#endif

#define MS_TCPOPT_EOL 0
#define MS_TCPOPT_NOP 1
#define MS_TCP_MAX_OPT_BYTES 40

/* ---- SipHash-2-4 ------------------------------------------------------ */

#define MS_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

#define MS_SIPROUND(v0, v1, v2, v3)                                   \
	do {                                                          \
		v0 += v1; v1 = MS_ROTL(v1, 13); v1 ^= v0; v0 = MS_ROTL(v0, 32); \
		v2 += v3; v3 = MS_ROTL(v3, 16); v3 ^= v2;             \
		v0 += v3; v3 = MS_ROTL(v3, 21); v3 ^= v0;             \
		v2 += v1; v1 = MS_ROTL(v1, 17); v1 ^= v2; v2 = MS_ROTL(v2, 32); \
	} while (0)

#define MS_SIPABSORB(v0, v1, v2, v3, m)                               \
	do {                                                          \
		v3 ^= (m);                                            \
		MS_SIPROUND(v0, v1, v2, v3);                          \
		MS_SIPROUND(v0, v1, v2, v3);                          \
		v0 ^= (m);                                            \
	} while (0)

static __always_inline __u64 wire_tag(const struct ms_wire_key *k, const struct ms_wire_mac_input *in)
{
	__u64 w[6];
	__u64 v0 = k->k0 ^ 0x736f6d6570736575ULL;
	__u64 v1 = k->k1 ^ 0x646f72616e646f6dULL;
	__u64 v2 = k->k0 ^ 0x6c7967656e657261ULL;
	__u64 v3 = k->k1 ^ 0x7465646279746573ULL;

	__builtin_memcpy(w, in, sizeof(w));
	MS_SIPABSORB(v0, v1, v2, v3, w[0]);
	MS_SIPABSORB(v0, v1, v2, v3, w[1]);
	MS_SIPABSORB(v0, v1, v2, v3, w[2]);
	MS_SIPABSORB(v0, v1, v2, v3, w[3]);
	MS_SIPABSORB(v0, v1, v2, v3, w[4]);
	MS_SIPABSORB(v0, v1, v2, v3, w[5]);
	/* The last block: no bytes left, the length (48) in the top byte. */
	MS_SIPABSORB(v0, v1, v2, v3, (__u64)sizeof(*in) << 56);
	v2 ^= 0xff;
	MS_SIPROUND(v0, v1, v2, v3);
	MS_SIPROUND(v0, v1, v2, v3);
	MS_SIPROUND(v0, v1, v2, v3);
	MS_SIPROUND(v0, v1, v2, v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* The time of the option: CLOCK_TAI seconds, low 16 bits, from the coarse
 * monotonic clock and the daemon's offset (ms_config.tai_offset_ns). */
static __always_inline __u16 wire_time(const struct ms_config *cfg)
{
	return (__u16)((bpf_ktime_get_coarse_ns() + (__u64)cfg->tai_offset_ns) / 1000000000ULL);
}

static __always_inline void wire_mac_input(struct ms_wire_mac_input *in, const struct ms_wire_opt *opt,
					   const struct ms_addr *src, const struct ms_addr *dst,
					   __be16 sport, __be16 dport)
{
	in->src = *src;
	in->dst = *dst;
	in->sport = sport;
	in->dport = dport;
	in->identity = opt->identity;
	in->exid = opt->exid;
	in->version = opt->version;
	in->key_id = opt->key_id;
	in->time = opt->time;
	in->_pad0[0] = 0;
	in->_pad0[1] = 0;
}

/* ---- sender (sockops) ------------------------------------------------- */

/* Both ends of a sockops socket: local (src) and remote (dst). Each context
 * field is read into a register at once: the verifier takes a context load
 * only at the context pointer plus a constant, and the compiler would share
 * one computed address between the branches. */
static __always_inline void wire_ends(const struct bpf_sock_ops *skops, struct ms_addr *src,
				      struct ms_addr *dst)
{
	if (skops->family == 2 /* AF_INET */) {
		__u32 l4 = skops->local_ip4, r4 = skops->remote_ip4;

		asm volatile("" : "+r"(l4), "+r"(r4));
		addr_from_ip4(src, l4);
		addr_from_ip4(dst, r4);
	} else {
		__u32 l[4], r[4];

		l[0] = skops->local_ip6[0];
		l[1] = skops->local_ip6[1];
		l[2] = skops->local_ip6[2];
		l[3] = skops->local_ip6[3];
		asm volatile("" : "+r"(l[0]), "+r"(l[1]), "+r"(l[2]), "+r"(l[3]));
		r[0] = skops->remote_ip6[0];
		r[1] = skops->remote_ip6[1];
		r[2] = skops->remote_ip6[2];
		r[3] = skops->remote_ip6[3];
		asm volatile("" : "+r"(r[0]), "+r"(r[1]), "+r"(r[2]), "+r"(r[3]));
		addr_from_ip6(src, l);
		addr_from_ip6(dst, r);
	}
}

/* The workload identity a socket's SYN states, 0 for none. */
static __always_inline __u32 wire_identity(struct bpf_sock_ops *skops, void *cgroups,
					   const struct ms_config *cfg)
{
	const struct ms_cgroup_value *entry;
	struct bpf_sock *sk = skops->sk;
	__u64 cgroup_id;
	__u32 id;

	if (!sk)
		return 0;
	id = sk_identity(cgroups, cfg, sk, &cgroup_id, &entry);
	return id >= MS_IDENTITY_FIRST_WORKLOAD ? id : 0;
}

static __always_inline bool wire_syn(const struct bpf_sock_ops *skops)
{
	return (skops->skb_tcp_flags & (MS_TCP_F_SYN | MS_TCP_F_ACK)) == MS_TCP_F_SYN;
}

/* TCP_CONNECT_CB: arm the option callbacks of a workload's socket of this
 * host's network namespace connecting to another node, if this node signs. */
static __always_inline void wire_arm(struct bpf_sock_ops *skops, void *cgroups, void *ipcache,
				     const struct ms_config *cfg)
{
	struct ms_ipcache_value *v;
	struct ms_addr src, dst;

	if (!cfg->wire_key_id || bpf_get_netns_cookie(skops) != cfg->host_netns_cookie)
		return;
	wire_ends(skops, &src, &dst);
	v = ipcache_lookup(ipcache, &dst);
	if (!v || !(v->flags & MS_IPCACHE_F_REMOTE_NODE) ||
	    (v->flags & (MS_IPCACHE_F_HOST | MS_IPCACHE_F_NETNS | MS_IPCACHE_F_BROADCAST)))
		return;
	if (!wire_identity(skops, cgroups, cfg))
		return;
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
}

/* ACTIVE_ESTABLISHED_CB: the SYN is acknowledged, nothing more to write. */
static __always_inline void wire_disarm(struct bpf_sock_ops *skops)
{
	if (skops->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG)
		bpf_sock_ops_cb_flags_set(skops,
					  skops->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
}

/* HDR_OPT_LEN_CB: room for the option on a SYN. Without room (a TFO
 * cookie, MD5) the SYN goes without, counted. */
static __always_inline void wire_reserve(struct bpf_sock_ops *skops)
{
	if (!wire_syn(skops))
		return;
	if (bpf_reserve_hdr_opt(skops, MS_WIRE_OPT_LEN, 0))
		count(MS_CTR_WIRE_UNSENT);
}

/* WRITE_HDR_OPT_CB: the option, signed with the key in force. */
static __always_inline void wire_write(struct bpf_sock_ops *skops, void *cgroups,
				       const struct ms_config *cfg)
{
	struct ms_wire_mac_input in;
	struct ms_wire_opt opt = {};
	struct ms_addr src, dst;
	struct ms_wire_key *key;
	__u32 key_id, id;
	__u64 tag;

	if (!wire_syn(skops))
		return;
	/* The reserved room stays NOPs without a key or an identity (the
	 * policy changed since the connect). */
	key_id = cfg->wire_key_id;
	key = bpf_map_lookup_elem(&ms_wire_keys, &key_id);
	if (!key || !(key->flags & MS_WIRE_KEY_F_VALID))
		return;
	id = wire_identity(skops, cgroups, cfg);
	if (!id)
		return;
	wire_ends(skops, &src, &dst);
	opt.kind = MS_WIRE_OPT_KIND;
	opt.len = MS_WIRE_OPT_LEN;
	opt.exid = bpf_htons(MS_WIRE_EXID);
	opt.version = MS_WIRE_VERSION;
	opt.key_id = (__u8)key_id;
	opt.time = bpf_htons(wire_time(cfg));
	opt.identity = bpf_htonl(id);
	/* local_port: host order; remote_port: network order in the upper
	 * 16 bits (bpf_sock_ops). */
	wire_mac_input(&in, &opt, &src, &dst, bpf_htons((__u16)skops->local_port),
		       bpf_htons((__u16)bpf_ntohl(skops->remote_port)));
	tag = wire_tag(key, &in);
	__builtin_memcpy(opt.tag, &tag, sizeof(opt.tag));
	if (bpf_store_hdr_opt(skops, &opt, sizeof(opt), 0) == 0)
		count(MS_CTR_WIRE_SENT);
	else
		count(MS_CTR_WIRE_UNSENT);
}

/* ---- receiver (ingress) ----------------------------------------------- */

enum { MS_WIRE_NONE = 0, MS_WIRE_VALID = 1, MS_WIRE_FORGED = 2 };

/* The walk over a SYN's TCP options, a step per option in bpf_loop() (the
 * verifier checks the step once, not 40 unrolled branches at every state of
 * the ingress program). */
/* The receiver's working memory, off the stack (the ingress program's own
 * leaves too little for it): per CPU, a program runs to its end on one. */
struct ms_wire_scratch {
	__u8 opts[64];        /* a SYN's TCP options, the rest zero */
	struct ms_wire_mac_input in;
	struct ms_wire_opt opt;
	__u8 _pad0[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ms_wire_scratch);
} ms_wire_scratch SEC(".maps") MS_PER_RUN;

struct ms_opt_walk {
	const __u8 *opts;     /* ms_wire_scratch.opts */
	__u32 len;            /* bytes of options in opts */
	__u32 pos;
	int found;            /* offset of the option, or -1 */
};

/* opts[i] for any i, as the verifier can see it stays in the 64 bytes
 * (the compiler would drop a mask it can prove useless, and the verifier's
 * bounds of `i` are looser than the compiler's). */
static __always_inline __u8 opt_byte(const __u8 *opts, __u32 i)
{
	asm volatile("" : "+r"(i));
	return opts[i & 63];
}

static long wire_find_step(__u32 i, void *ctx)
{
	struct ms_opt_walk *w = ctx;
	__u32 pos = w->pos, len = w->len;
	__u8 kind, olen;

	if (pos + 1 > len || pos >= MS_TCP_MAX_OPT_BYTES)
		return 1;
	kind = opt_byte(w->opts, pos);
	if (kind == MS_TCPOPT_EOL)
		return 1;
	if (kind == MS_TCPOPT_NOP) {
		w->pos = pos + 1;
		return 0;
	}
	if (pos + 2 > len)
		return 1;
	olen = opt_byte(w->opts, pos + 1);
	if (olen < 2)
		return 1;
	if (kind == MS_WIRE_OPT_KIND && olen == MS_WIRE_OPT_LEN && pos + MS_WIRE_OPT_LEN <= len &&
	    opt_byte(w->opts, pos + 2) == (MS_WIRE_EXID >> 8) &&
	    opt_byte(w->opts, pos + 3) == (MS_WIRE_EXID & 0xff)) {
		w->found = (int)pos;
		return 1;
	}
	w->pos = pos + olen;
	return 0;
}

/* A SYN `p` from another node: MS_WIRE_NONE without the option (or with
 * TCP options that do not parse), MS_WIRE_VALID with *identity the
 * verified claim, MS_WIRE_FORGED for an option that does not verify.
 * A global function: the verifier checks it once, on its own, not at every
 * state of the ingress program that reaches it. */
__attribute__((noinline)) int wire_verify(struct __sk_buff *skb, const struct ms_pkt *p, __u32 *identity)
{
	struct ms_opt_walk w = {};
	struct ms_wire_scratch *s;
	struct ms_wire_key *key;
	struct ms_config *cfg;
	__u8 doff;
	__u32 len, key_id, id, zero = 0;
	__s16 skew;
	__u64 tag, got;
	int at;

	if (!skb || !p || !identity)
		return MS_WIRE_NONE;
	s = bpf_map_lookup_elem(&ms_wire_scratch, &zero);
	cfg = bpf_map_lookup_elem(&ms_config, &zero);
	if (!s || !cfg)
		return MS_WIRE_NONE;
	if (bpf_skb_load_bytes_relative(skb, p->l4_off + 12, &doff, 1, BPF_HDR_START_NET))
		return MS_WIRE_NONE;
	len = (__u32)(doff >> 4) * 4;
	if (len <= 20)
		return MS_WIRE_NONE;
	len -= 20;
	if (len > MS_TCP_MAX_OPT_BYTES)
		return MS_WIRE_NONE;
	__builtin_memset(s->opts, 0, sizeof(s->opts));
	if (bpf_skb_load_bytes_relative(skb, p->l4_off + 20, s->opts, len, BPF_HDR_START_NET))
		return MS_WIRE_NONE;
	w.opts = s->opts;
	w.len = len;
	w.found = -1;
	bpf_loop(MS_TCP_MAX_OPT_BYTES, wire_find_step, &w, 0);
	at = w.found;
	if (at < 0)
		return MS_WIRE_NONE;
	if (bpf_skb_load_bytes_relative(skb, p->l4_off + 20 + (__u32)at, &s->opt, sizeof(s->opt),
					BPF_HDR_START_NET))
		return MS_WIRE_NONE;
	if (s->opt.version != MS_WIRE_VERSION)
		return MS_WIRE_FORGED;
	id = bpf_ntohl(s->opt.identity);
	if (id < MS_IDENTITY_FIRST_WORKLOAD || id >= MS_IDENTITY_FIRST_EXTERNAL)
		return MS_WIRE_FORGED;
	skew = (__s16)(wire_time(cfg) - bpf_ntohs(s->opt.time));
	if (skew > MS_WIRE_MAX_SKEW_S || skew < -MS_WIRE_MAX_SKEW_S)
		return MS_WIRE_FORGED;
	key_id = s->opt.key_id;
	key = bpf_map_lookup_elem(&ms_wire_keys, &key_id);
	if (!key_id || !key || !(key->flags & MS_WIRE_KEY_F_VALID))
		return MS_WIRE_FORGED;
	wire_mac_input(&s->in, &s->opt, &p->src, &p->dst, p->sport, p->dport);
	tag = wire_tag(key, &s->in);
	__builtin_memcpy(&got, s->opt.tag, sizeof(got));
	if (got != tag)
		return MS_WIRE_FORGED;
	*identity = id;
	return MS_WIRE_VALID;
}

#endif /* MICROSEG_BPF_LIB_WIRE_H */
