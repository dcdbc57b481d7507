/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What a UDP DNS response binds (#27), parsed in the kernel: the question's
 * name, the CNAME chain from it and the A/AAAA addresses on the chain, with
 * their TTLs. Held to the reference parser (userspace/fqdn/dns_response.h)
 * on random and mutated messages by tests/e2e/attacks_dns_test.cpp (through
 * the test-only bpf/dns_test.bpf.c): the same single pass in answer order,
 * the same bounds, the same refusals. Names are kept as hashes (FNV-1a 64)
 * of their normal form (fqdn/dns_names.h: lowercased, no trailing dot),
 * which is what a policy's names will be looked up by.
 *
 * The message is copied whole into the caller's scratch state (a per-CPU
 * map value: too big for the stack) and walked by one bpf_loop of steps, a
 * step being one byte of a name (a length, a pointer or a character) or the
 * fixed fields of the question or a record: the verifier sees one small
 * callback, and the work is bounded by the message (~26k steps at most).
 */
#ifndef MICROSEG_BPF_LIB_DNS_H
#define MICROSEG_BPF_LIB_DNS_H

#include <linux/bpf.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>

#include "bpf/abi.h"

#define MS_DNS_MSG_MAX 1232     /* longer: MS_DNS_OVERSIZED (kMaxMessageBytes) */
#define MS_DNS_BUF 2048         /* the copy; a power of two above MSG_MAX */
#define MS_DNS_MAX_RECORDS 32   /* answer records looked at (kMaxAnswerRecords) */
#define MS_DNS_MAX_HOPS 16      /* pointers followed in one name (kMaxPointerHops) */
#define MS_DNS_MAX_CHAIN 33     /* the question, then one CNAME target a record */
#define MS_DNS_MAX_ADDRS 8      /* addresses bound; more on the chain are dropped */
#define MS_DNS_NAME_MAX 253     /* normal form, without the trailing dot */
#define MS_DNS_LABEL_MAX 63
#define MS_DNS_STEPS 32768      /* > 400 + 32 * 801: see the file comment */
#define MS_DNS_MAX_STARTS 64    /* label starts of the question kept (suffixes) */

enum ms_dns_outcome {          /* fqdn::DnsOutcome, in its order */
	MS_DNS_BOUND = 0,
	MS_DNS_NOT_RESPONSE,
	MS_DNS_TRUNCATED,
	MS_DNS_REFUSED,
	MS_DNS_NOT_ONE_QUESTION,
	MS_DNS_BAD_QUESTION,
	MS_DNS_MALFORMED,
	MS_DNS_OVERSIZED,
};

struct ms_dns_addr {
	struct ms_addr addr;   /* IPv4 mapped */
	__u32 ttl;
	__u32 _pad0;
	__u64 owner;           /* hash of the record's owner name */
};

/* A name being walked (see dns_name_step). */
struct ms_dns_name {
	__u64 hash;            /* FNV-1a 64 of the normal form so far */
	__u32 pos;             /* the next byte to read */
	__u32 next;            /* where the record goes on after the name */
	__u32 raw_len;         /* the name as written: labels and dots between */
	__u32 norm_len;        /* the normal form's length so far */
	__u8 left;             /* bytes of the current label still to read */
	__u8 hops;
	__u8 jumped;
	__u8 pointers;         /* compression allowed (not in the question) */
	__u8 started;          /* a label was read */
	__u8 cur;              /* characters of the current normal-form label */
	__u8 last;             /* its last character */
	__u8 pending_dot;      /* a '.' that is part of the name only if more follows */
	__u8 valid;            /* a host name so far */
	__u8 _pad0[7];
};

enum {
	MS_DNS_ST_QNAME = 0,
	MS_DNS_ST_OWNER,
	MS_DNS_ST_TARGET,
	MS_DNS_ST_DONE,
};

struct ms_dns_state {
	__u8 msg[MS_DNS_BUF];
	__u64 chain[MS_DNS_MAX_CHAIN];
	struct ms_dns_addr addrs[MS_DNS_MAX_ADDRS];
	struct ms_dns_name name;
	__u32 len;
	__u32 pos;             /* the next record */
	__u32 rd_end;          /* the CNAME record's rdata end */
	__u16 id;
	__u16 qtype;
	__u16 records;         /* answer records to look at */
	__u16 rec;             /* records looked at */
	__u16 n_chain;
	__u16 n_addrs;
	__u16 dropped;
	__u8 state;
	__u8 outcome;
	__u8 max_addrs;
	__u8 n_starts;         /* label starts of the question after its first */
	__u16 qlen;            /* characters of the question's normal form */
	__u8 _pad0[4];
	/* The question's normal form (for ms_fqdn_names: abi.h), its
	 * polynomial hash (MS_FQDN_POLY) and, at the start of each label after
	 * the first, the polynomial hash of what came before and where it is:
	 * the hash of every suffix follows from these (lib/fqdn.bpf.h). */
	char qtext[MS_FQDN_TEXT];
	__u64 qpoly;
	__u64 start_poly[MS_DNS_MAX_STARTS];
	__u16 start_at[MS_DNS_MAX_STARTS];
	/* What lib/fqdn.bpf.h writes, built here: its stack is short. */
	struct ms_fqdn_name_key name_key;
	struct ms_fqdn_binding_key bind_key;
	struct ms_fqdn_binding_value bind_value;
};

#define MS_FNV_OFFSET 0xcbf29ce484222325ULL
#define MS_FNV_PRIME 0x100000001b3ULL

static __always_inline __u8 dns_byte(const struct ms_dns_state *s, __u32 at)
{
	return s->msg[at & (MS_DNS_BUF - 1)];
}

static __always_inline __u16 dns_be16(const struct ms_dns_state *s, __u32 at)
{
	return (__u16)dns_byte(s, at) << 8 | dns_byte(s, at + 1);
}

static __always_inline __u32 dns_be32(const struct ms_dns_state *s, __u32 at)
{
	return (__u32)dns_be16(s, at) << 16 | dns_be16(s, at + 2);
}

static __always_inline void dns_name_start(struct ms_dns_name *n, __u32 at, bool pointers)
{
	__builtin_memset(n, 0, sizeof(*n));
	n->hash = MS_FNV_OFFSET;
	n->pos = at;
	n->pointers = pointers;
	n->valid = 1;
}

static __always_inline void dns_hash(struct ms_dns_state *s, struct ms_dns_name *n, __u8 c)
{
	n->hash = (n->hash ^ c) * MS_FNV_PRIME;
	if (s->state == MS_DNS_ST_QNAME) {
		__u8 k = s->n_starts;

		s->qtext[n->norm_len & (MS_FQDN_TEXT - 1)] = c;
		if (c == '.' && k < MS_DNS_MAX_STARTS) {
			s->start_poly[k & (MS_DNS_MAX_STARTS - 1)] = s->qpoly * MS_FQDN_POLY + c;
			s->start_at[k & (MS_DNS_MAX_STARTS - 1)] = n->norm_len + 1;
			s->n_starts = k + 1;
		}
		s->qpoly = s->qpoly * MS_FQDN_POLY + c;
	}
	n->norm_len++;
}

/* One byte of the name as fqdn::normalName() reads its text: lowercased,
 * labels split at '.', one trailing '.' dropped. */
static __always_inline void dns_feed(struct ms_dns_state *s, struct ms_dns_name *n, __u8 c)
{
	if (c == '.') {
		if (n->cur == 0 || n->last == '-')
			n->valid = 0;
		n->pending_dot = 1;
		n->cur = 0;
		return;
	}
	if (n->pending_dot) {
		dns_hash(s, n, '.');
		n->pending_dot = 0;
	}
	if (c >= 'A' && c <= 'Z')
		c += 'a' - 'A';
	if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
		n->valid = 0;
	if (n->cur == 0 && c == '-')
		n->valid = 0;
	if (n->cur < 255)
		n->cur++;
	if (n->cur > MS_DNS_LABEL_MAX)
		n->valid = 0;
	n->last = c;
	dns_hash(s, n, c);
}

static __always_inline void dns_name_end(struct ms_dns_name *n)
{
	if (!n->pending_dot && (n->cur == 0 || n->last == '-'))
		n->valid = 0;
	if (n->norm_len == 0 || n->norm_len > MS_DNS_NAME_MAX)
		n->valid = 0;
}

/* One step of a name: -1 malformed (as fqdn's readName fails), 0 more to
 * read, 1 read whole (n->next, n->valid, n->hash). */
static __always_inline int dns_name_step(struct ms_dns_state *s, struct ms_dns_name *n)
{
	__u32 target;
	__u8 b;

	if (n->left) {
		dns_feed(s, n, dns_byte(s, n->pos));
		n->pos++;
		n->left--;
		return 0;
	}
	if (n->pos >= s->len)
		return -1;
	b = dns_byte(s, n->pos);
	if ((b & 0xc0) == 0xc0) {
		if (!n->pointers || n->pos + 1 >= s->len || ++n->hops > MS_DNS_MAX_HOPS)
			return -1;
		target = (__u32)(b & 0x3f) << 8 | dns_byte(s, n->pos + 1);
		if (target >= n->pos)
			return -1; /* forward or self: a loop waiting to happen */
		if (!n->jumped)
			n->next = n->pos + 2;
		n->jumped = 1;
		n->pos = target;
		return 0;
	}
	if (b & 0xc0)
		return -1; /* extended label types */
	if (b == 0) {
		if (!n->jumped)
			n->next = n->pos + 1;
		dns_name_end(n);
		return 1;
	}
	if (n->pos + 1 + b > s->len)
		return -1;
	n->raw_len += (n->started ? 1 : 0) + b;
	if (n->raw_len > MS_DNS_NAME_MAX + 1)
		return -1;
	if (n->started)
		dns_feed(s, n, '.');
	n->started = 1;
	n->left = b;
	n->pos++;
	return 0;
}

static __always_inline bool dns_on_chain(const struct ms_dns_state *s, __u64 h)
{
	for (int i = 0; i < MS_DNS_MAX_CHAIN; i++) {
		if (i >= s->n_chain)
			break;
		if (s->chain[i] == h)
			return true;
	}
	return false;
}

static __always_inline long dns_done(struct ms_dns_state *s, __u8 outcome)
{
	s->outcome = outcome;
	s->state = MS_DNS_ST_DONE;
	return 1;
}

/* The next record, or the end: every record looked at is Bound. */
static __always_inline long dns_next_record(struct ms_dns_state *s)
{
	if (s->rec >= s->records)
		return dns_done(s, MS_DNS_BOUND);
	s->state = MS_DNS_ST_OWNER;
	dns_name_start(&s->name, s->pos, true);
	return 0;
}

/* A record's owner name was read: its fixed fields, then what it binds. */
static __always_inline long dns_record(struct ms_dns_state *s)
{
	__u32 at = s->name.next, rdata, ttl, i;
	__u16 type, cls, rdlen;
	struct ms_dns_addr *a;
	bool on_chain;

	if (at + 10 > s->len)
		return dns_done(s, MS_DNS_MALFORMED);
	type = dns_be16(s, at);
	cls = dns_be16(s, at + 2);
	ttl = dns_be32(s, at + 4);
	if (ttl & 0x80000000u)
		ttl = 0; /* RFC 2181 8 */
	rdlen = dns_be16(s, at + 8);
	rdata = at + 10;
	if (rdata + rdlen > s->len)
		return dns_done(s, MS_DNS_MALFORMED);
	s->rec++;
	s->pos = rdata + rdlen;
	on_chain = s->name.valid && dns_on_chain(s, s->name.hash);
	if (!on_chain || cls != 1)
		return dns_next_record(s);
	if (type == 5) { /* CNAME */
		s->rd_end = rdata + rdlen;
		s->state = MS_DNS_ST_TARGET;
		dns_name_start(&s->name, rdata, true);
		return 0;
	}
	if ((type == 1 && rdlen != 4) || (type == 28 && rdlen != 16))
		return dns_done(s, MS_DNS_MALFORMED);
	if (type != 1 && type != 28)
		return dns_next_record(s);
	if (s->n_addrs >= s->max_addrs || s->n_addrs >= MS_DNS_MAX_ADDRS) {
		s->dropped++;
		return dns_next_record(s);
	}
	a = &s->addrs[s->n_addrs & (MS_DNS_MAX_ADDRS - 1)];
	__builtin_memset(a, 0, sizeof(*a));
	if (type == 1) {
		a->addr.a[10] = 0xff;
		a->addr.a[11] = 0xff;
		for (i = 0; i < 4; i++)
			a->addr.a[12 + i] = dns_byte(s, rdata + i);
	} else {
		for (i = 0; i < 16; i++)
			a->addr.a[i] = dns_byte(s, rdata + i);
	}
	a->ttl = ttl;
	a->owner = s->name.hash;
	s->n_addrs++;
	return dns_next_record(s);
}

static long dns_step(__u64 i, void *ctx)
{
	struct ms_dns_state *s = *(struct ms_dns_state **)ctx;
	__u32 next;
	int rc;

	if (s->state == MS_DNS_ST_DONE)
		return 1;
	rc = dns_name_step(s, &s->name);
	if (rc < 0)
		return dns_done(s, MS_DNS_MALFORMED);
	if (rc == 0)
		return 0;
	switch (s->state) {
	case MS_DNS_ST_QNAME:
		if (!s->name.valid)
			return dns_done(s, MS_DNS_BAD_QUESTION);
		next = s->name.next;
		if (next + 4 > s->len)
			return dns_done(s, MS_DNS_MALFORMED);
		s->qtype = dns_be16(s, next);
		s->chain[0] = s->name.hash;
		s->qlen = s->name.norm_len;
		s->n_chain = 1;
		s->pos = next + 4;
		return dns_next_record(s);
	case MS_DNS_ST_OWNER:
		return dns_record(s);
	case MS_DNS_ST_TARGET:
		if (s->name.next > s->rd_end)
			return dns_done(s, MS_DNS_MALFORMED);
		if (s->name.valid && !dns_on_chain(s, s->name.hash)) {
			__u16 k = s->n_chain;

			if (k < MS_DNS_MAX_CHAIN) {
				s->chain[k] = s->name.hash;
				s->n_chain = k + 1;
			}
		}
		return dns_next_record(s);
	}
	return dns_done(s, MS_DNS_MALFORMED);
}

/* MS_FQDN_POLY^e for e < 512 (mod 2^64), without a branch: a branch per
 * bit would give the verifier 2^9 states to walk per suffix. */
static __always_inline __u64 dns_pow(__u32 e)
{
	__u64 r = 1, b = MS_FQDN_POLY, mask;

	for (int i = 0; i < 9; i++) {
		mask = -(__u64)(e & 1);
		r *= (b & mask) | (1 & ~mask);
		b *= b;
		e >>= 1;
	}
	return r;
}

/* The polynomial hash (MS_FQDN_POLY) of the question's suffix from its
 * i-th recorded label start on (abi.h: ms_fqdn_names). */
static __always_inline __u64 dns_suffix_hash(const struct ms_dns_state *s, __u32 i)
{
	__u32 at = s->start_at[i & (MS_DNS_MAX_STARTS - 1)];

	/* suffix = whole - prefix * B^(suffix length) */
	return s->qpoly - s->start_poly[i & (MS_DNS_MAX_STARTS - 1)] * dns_pow(s->qlen - at);
}

/* Parses the `len` bytes of a DNS message at `off` of the packet into
 * `s` (s->outcome, and for MS_DNS_BOUND the rest), binding at most
 * `max_addrs` addresses. */
static __always_inline void dns_parse(struct __sk_buff *skb, __u32 off, __u32 len, struct ms_dns_state *s,
				      __u8 max_addrs)
{
	struct ms_dns_state *ctx = s;
	__u64 n = len;
	__u16 flags, qdcount;

	s->outcome = MS_DNS_MALFORMED;
	s->state = MS_DNS_ST_DONE;
	s->n_chain = 0;
	s->n_addrs = 0;
	s->dropped = 0;
	s->rec = 0;
	s->records = 0;
	s->id = 0;
	s->qtype = 0;
	s->max_addrs = max_addrs;
	s->n_starts = 0;
	s->qlen = 0;
	s->qpoly = 0;
	__builtin_memset(s->qtext, 0, sizeof(s->qtext));
	if (n > MS_DNS_MSG_MAX) {
		s->outcome = MS_DNS_OVERSIZED;
		return;
	}
	if (n < 12)
		return;
	/* The register just compared, not an older copy of `len` the verifier
	 * knows no lower bound of. */
	asm volatile("" : "+r"(n));
	if (n < 12 || n > MS_DNS_MSG_MAX)
		return;
	if (bpf_skb_load_bytes(skb, off, s->msg, n) < 0)
		return;
	s->len = n;
	s->id = dns_be16(s, 0);
	flags = dns_be16(s, 2);
	if (!(flags & 0x8000) || ((flags >> 11) & 0xf) != 0) {
		s->outcome = MS_DNS_NOT_RESPONSE;
		return;
	}
	if (flags & 0x0200) {
		s->outcome = MS_DNS_TRUNCATED;
		return;
	}
	if (flags & 0xf) {
		s->outcome = MS_DNS_REFUSED;
		return;
	}
	qdcount = dns_be16(s, 4);
	if (qdcount != 1) {
		s->outcome = MS_DNS_NOT_ONE_QUESTION;
		return;
	}
	s->records = dns_be16(s, 6);
	if (s->records > MS_DNS_MAX_RECORDS)
		s->records = MS_DNS_MAX_RECORDS;
	s->state = MS_DNS_ST_QNAME;
	dns_name_start(&s->name, 12, false);
	bpf_loop(MS_DNS_STEPS, dns_step, &ctx, 0);
	if (s->state != MS_DNS_ST_DONE)
		dns_done(s, MS_DNS_MALFORMED); /* out of steps: cannot happen (bounded above) */
}

#endif /* MICROSEG_BPF_LIB_DNS_H */
