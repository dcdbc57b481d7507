/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ms_sockets, the per-socket state (abi.h: struct ms_sock_state): one
 * definition for the datapath (lib/maps.bpf.h), which writes it, and the
 * socket iterators (bpf/revoke.bpf.c), which read it through the datapath's
 * pin (the daemon hands the iterator object that map before load).
 */
#ifndef MICROSEG_BPF_LIB_SOCK_STATE_H
#define MICROSEG_BPF_LIB_SOCK_STATE_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bpf/abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	/* no CLONE: an accepted socket has its own connection (its since_ns
	 * is stamped when it is established) and is not connected UDP */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ms_sock_state);
} ms_sockets SEC(".maps");

#endif
