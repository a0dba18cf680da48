/*
 * Field types of event structs (Inspektor Gadget compatible). The host knows a
 * field's meaning by its typedef name in BTF: a gadget_timestamp is shown as
 * wall-clock time, a gadget_errno by its name, a gadget_process is flattened
 * into proc.comm, proc.pid, ... So keep the names: they are the contract.
 */
#ifndef GADGET_TYPES_H
#define GADGET_TYPES_H

#ifndef TASK_COMM_LEN
#define TASK_COMM_LEN 16
#endif

/* Nanoseconds since boot, from bpf_ktime_get_boot_ns(). */
typedef __u64 gadget_timestamp;
/* Inode number of a mount namespace (and of a network namespace). */
typedef __u64 gadget_mntns_id;
typedef __u32 gadget_netns_id;
typedef __u32 gadget_signal;
typedef __u32 gadget_errno;
typedef __u32 gadget_uid;
typedef __u32 gadget_gid;
typedef __u64 gadget_syscall;
typedef __u32 gadget_file_mode;
typedef __u32 gadget_file_flags;
typedef __u32 gadget_pid;
typedef __u32 gadget_ppid;
typedef __u32 gadget_tid;
typedef char gadget_comm;
typedef char gadget_pcomm;
typedef __u64 gadget_bytes;
typedef __u64 gadget_duration;

struct gadget_creds {
	gadget_uid uid;
	gadget_gid gid;
};

struct gadget_parent {
	gadget_pcomm comm[TASK_COMM_LEN];
	gadget_ppid pid;
};

/* The process an event happened in; fill it with gadget_process_populate(). */
struct gadget_process {
	gadget_comm comm[TASK_COMM_LEN];
	gadget_pid pid;
	gadget_tid tid;
	gadget_mntns_id mntns_id;
	struct gadget_creds creds;
	struct gadget_parent parent;
};

#endif /* GADGET_TYPES_H */
