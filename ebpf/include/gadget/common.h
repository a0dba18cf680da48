/* Helpers shared by tracers (Inspektor Gadget compatible names). */
#ifndef GADGET_COMMON_H
#define GADGET_COMMON_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include <gadget/types.h>

/* The mount namespace of `task`: what IG filters and enriches events by. */
static __always_inline gadget_mntns_id gadget_get_mntns_id_of(struct task_struct *task)
{
	return BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
}

/* Fills `p` with the current task: command, pid (tgid), tid, mount
 * namespace, uid/gid and the parent's command and pid. */
static __always_inline void gadget_process_populate(struct gadget_process *p)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);

	bpf_get_current_comm(p->comm, sizeof(p->comm));
	p->pid = pid_tgid >> 32;
	p->tid = (__u32)pid_tgid;
	p->mntns_id = gadget_get_mntns_id_of(task);
	p->creds.uid = (__u32)uid_gid;
	p->creds.gid = uid_gid >> 32;
	p->parent.pid = BPF_CORE_READ(parent, tgid);
	BPF_CORE_READ_STR_INTO(&p->parent.comm, parent, comm);
}

#endif /* GADGET_COMMON_H */
