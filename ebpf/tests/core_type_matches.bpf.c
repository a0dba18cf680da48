// SPDX-License-Identifier: GPL-2.0
// Test object for CO-RE relocation kind 12 (BPF_CORE_TYPE_MATCHES): each probe writes which
// branch of a bpf_core_type_matches() check ran into `results`, so a test can assert the
// host resolved the relocation the way libbpf would on this kernel.
//   slot 0: struct task_struct___ours   (members pid and tgid, as the kernel has them) -> 1
//   slot 1: struct task_struct___bogus  (a member the kernel does not have)            -> 2
//   slot 2: btf_trace_block_rq_issue___new (the kernel >= 5.11 prototype)              -> 1
//   slot 3: btf_trace_block_rq_issue___old (the (q, rq) prototype before 5.11)         -> 2
//   slot 4: struct request___signed_flags (cmd_flags as a signed int: kinds differ)    -> 2
// 1 means "matches", 2 "does not match"; 0 would mean the probe never ran.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct___ours {
	int pid;
	int tgid;
};

struct task_struct___bogus {
	int pid;
	long no_such_member_in_the_kernel;
};

struct request___empty {};
struct request_queue___empty {};

struct request___signed_flags {
	int cmd_flags;
};

typedef void (*btf_trace_block_rq_issue___new)(void *, struct request___empty *);
typedef void (*btf_trace_block_rq_issue___old)(void *, struct request_queue___empty *,
					       struct request___empty *);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 5);
	__type(key, __u32);
	__type(value, __u64);
} results SEC(".maps");

static __always_inline void record(__u32 slot, int matches)
{
	__u64 v = matches ? 1 : 2;

	bpf_map_update_elem(&results, &slot, &v, BPF_ANY);
}

SEC("raw_tp/sys_enter")
int core_type_matches(void *ctx)
{
	record(0, bpf_core_type_matches(struct task_struct___ours));
	record(1, bpf_core_type_matches(struct task_struct___bogus));
	record(2, bpf_core_type_matches(btf_trace_block_rq_issue___new));
	record(3, bpf_core_type_matches(btf_trace_block_rq_issue___old));
	record(4, bpf_core_type_matches(struct request___signed_flags));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
