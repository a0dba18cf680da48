// SPDX-License-Identifier: GPL-2.0
/*
 * runqlat: scheduler run-queue latency, the time from a task becoming
 * runnable (woken, or preempted while still runnable) to running on a CPU,
 * in log2 slots of microseconds per process, exposed as the datasource
 * "runqlat" (map `hists`). Counts are cumulative; the guest sums or ranks.
 *
 * Built from the gadget template and the public headers only: no host code
 * knows this gadget.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include <gadget/macros.h>
#include <gadget/histogram.h>

char LICENSE[] SEC("license") = "GPL";

/* Gadget parameter --pid (gadget.yaml params.ebpf.targ_tgid): 0 = all. */
const volatile __u32 targ_tgid = 0;

#define TASK_RUNNING_ 0

struct hist_key {
	__u32 tgid;
	char comm[16];
};

struct hist {
	gadget_histogram_slot__u32 latency[GADGET_HIST_SLOTS];
};

/* Thread ID -> when it became runnable (ns). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, __u64);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct hist_key);
	__type(value, struct hist);
} hists SEC(".maps");

GADGET_MAPITER(runqlat, hists);

static __always_inline int enqueued(struct task_struct *p)
{
	__u32 pid = p->pid;
	__u64 ts;

	/* The idle task and other processes (with --pid) are not measured. */
	if (!pid || (targ_tgid && p->tgid != targ_tgid))
		return 0;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &pid, &ts, BPF_ANY);
	return 0;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(sched_wakeup, struct task_struct *p)
{
	return enqueued(p);
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(sched_wakeup_new, struct task_struct *p)
{
	return enqueued(p);
}

SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	struct hist_key key = {};
	struct hist *h, zero = {};
	__u32 pid = next->pid;
	__u64 *tsp, delta_us;

	/* Preempted while runnable: it waits on the run queue from now. */
	if (prev->__state == TASK_RUNNING_)
		enqueued(prev);

	tsp = bpf_map_lookup_elem(&start, &pid);
	if (!tsp)
		return 0;
	delta_us = (bpf_ktime_get_ns() - *tsp) / 1000;
	bpf_map_delete_elem(&start, &pid);

	key.tgid = next->tgid;
	bpf_probe_read_kernel_str(key.comm, sizeof(key.comm), next->group_leader->comm);
	h = bpf_map_lookup_elem(&hists, &key);
	if (!h) {
		bpf_map_update_elem(&hists, &key, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &key);
		if (!h)
			return 0;
	}
	__sync_fetch_and_add(&h->latency[gadget_log2_slot(delta_us)], 1);
	return 0;
}
