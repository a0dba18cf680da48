// SPDX-License-Identifier: GPL-2.0
// Bad input for the host's object model, one case per -D switch (the Makefile builds each):
//   MISSING_MAP   GADGET_MAPITER naming a map the object does not have
//   NO_HISTOGRAM  a map-iterator datasource whose value type has no histogram slots
//   BAD_PARAM     GADGET_PARAM on a global whose type cannot be a parameter (a struct)
//   GOOD          a well-formed datasource and parameters of every supported kind
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define GADGET_MAPITER(name, mapname) \
	const void *gadget_mapiter_##name##___##mapname __attribute__((unused));
#define GADGET_PARAM(name) const void *gadget_param_##name __attribute__((unused));

typedef __u32 gadget_histogram_slot__u32;
typedef __u32 gadget_pid;
typedef char gadget_comm[16];

struct dev_key {
	__u32 dev;
	__s16 prio;
	char comm[16];
};

struct hist {
	gadget_histogram_slot__u32 latency[27];
};

struct plain_value {
	__u64 count;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct dev_key);
#ifdef NO_HISTOGRAM
	__type(value, struct plain_value);
#else
	__type(value, struct hist);
#endif
} hists SEC(".maps");

#ifdef MISSING_MAP
GADGET_MAPITER(lat, nosuchmap);
#else
GADGET_MAPITER(lat, hists);
#endif

#ifdef BAD_PARAM
const volatile struct plain_value targ_plain = {};
GADGET_PARAM(targ_plain);
#endif

const volatile bool targ_flag = false;
const volatile __s8 targ_s8 = -1;
const volatile __u16 targ_u16 = 7;
const volatile int targ_ifindex = -1;
const volatile __u64 targ_u64 = 0;
const volatile gadget_pid targ_pid = 0;
const volatile gadget_comm targ_comm = {};
GADGET_PARAM(targ_flag);
GADGET_PARAM(targ_s8);
GADGET_PARAM(targ_u16);
GADGET_PARAM(targ_ifindex);
GADGET_PARAM(targ_u64);
GADGET_PARAM(targ_pid);
GADGET_PARAM(targ_comm);

SEC("raw_tp/block_rq_complete")
int probe(void *ctx)
{
	struct dev_key k = { .dev = targ_u16 + targ_s8 + targ_ifindex + targ_u64 + targ_pid };

	if (targ_flag && targ_comm[0])
		bpf_map_lookup_elem(&hists, &k);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
