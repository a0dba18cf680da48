/*
 * profile_blockio: block I/O latency histograms, per device and operation.
 *
 * Measures issue -> complete (device service time), as Inspektor Gadget's
 * profile_blockio does by default, into log2 slots of microseconds exposed
 * as the datasource "blockio" (map `hists`).
 *
 * Three attach modes with the same semantics; the loader loads one pair:
 *   tp_btf              tpbtf_issue  / tpbtf_complete   (fastest)
 *   raw tracepoint      rawtp_issue  / rawtp_complete
 *   classic tracepoint  tp_issue     / tp_complete      (no request pointer)
 *
 * Cheap path: when a request queue collects block statistics
 * (QUEUE_FLAG_STATS, e.g. writeback throttling is on), blk_mq_start_request()
 * stamps rq->io_start_time_ns itself, right after the block_rq_issue
 * tracepoint. Then issue only reads a few fields and returns, and complete
 * reads the request's own timestamp: no start-map traffic at all. Otherwise
 * issue stores a timestamp in `start` and complete looks it up and deletes it.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include <gadget/macros.h>
#include <gadget/histogram.h>

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader (.rodata, frozen: the verifier prunes dead branches). */
const volatile __u32 targ_dev = 0;		/* 0 = all; else major << 20 | minor */
const volatile bool force_start_map = false;	/* never use rq->io_start_time_ns */

/* Not in BTF (preprocessor constants); both stable since Linux 4.10. */
#define REQ_OP_MASK_	0xff
#define MINORBITS_	20

struct start_key {
	__u64 id;	/* struct request * (tp_btf, raw_tp) or sector (tracepoint) */
	__u32 dev;	/* 0 (tp_btf, raw_tp) or device (tracepoint) */
	__u32 _pad;	/* always 0: the whole key is hashed */
};

struct hist_key {
	__u32 dev;	/* major << 20 | minor */
	__u32 op;	/* REQ_OP_*: 0 read, 1 write, 2 flush, 3 discard, ... */
};

struct hist {
	gadget_histogram_slot__u64 latency[GADGET_HIST_SLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct start_key);
	__type(value, __u64);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct hist_key);
	__type(value, struct hist);
} hists SEC(".maps");

enum drop_reason {
	DROP_START_FULL = 0,	/* start map update failed */
	DROP_NO_START = 1,	/* completion without a start timestamp */
	DROP_HISTS_FULL = 2,	/* hists map full */
	DROP_CLOCK = 3,		/* start timestamp later than completion time */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/*
 * Keeps enum drop_reason in the object's BTF (the array map's key must be a
 * plain int): the host names the drops counters by its enumerators in
 * gadget_ebpf_drops_total{reason=...}.
 */
const enum drop_reason *gadget_drop_reasons __attribute__((unused));

GADGET_MAPITER(blockio, hists);

/* Inserted on the first I/O of a (dev, op); read-only source for the update. */
static const struct hist zero_hist;

/* Older kernels: the disk hangs off the request, not the queue (< 5.16). */
struct request___old {
	struct gendisk *rq_disk;
} __attribute__((preserve_access_index));

/* Older kernels: a bool instead of a reference count (< 5.17). */
struct blk_queue_stats___old {
	bool enable_accounting;
} __attribute__((preserve_access_index));

/* Before 4.18 the stats path stamped rq->issue_stat, not rq->io_start_time_ns. */
struct blk_issue_stat___old {
	__u64 stat;
};

struct request___issue_stat {
	struct blk_issue_stat___old issue_stat;
} __attribute__((preserve_access_index));

/*
 * RD(direct, p, field): p->field, CO-RE relocated either way. tp_btf programs
 * get typed pointers and use a plain load (the JIT emits a fault-tolerant
 * BPF_PROBE_MEM load, much cheaper than a helper call); raw_tp programs get
 * untyped u64 arguments and must go through bpf_probe_read_kernel. `direct`
 * is a compile-time constant in every caller, so only one branch survives.
 */
#define RD(direct, p, field) ((direct) ? (p)->field : BPF_CORE_READ(p, field))

static __always_inline void count_drop(__u32 reason)
{
	__u64 *cnt = bpf_map_lookup_elem(&drops, &reason);

	if (cnt)
		__sync_fetch_and_add(cnt, 1);
}

/*
 * Can the request timestamp be used at all? A load-time constant (rodata and
 * CO-RE field checks), so the verifier drops the unused path. Issue and
 * complete must agree on it: if it is false, every request goes through the
 * start map, even when the kernel also stamps io_start_time_ns.
 */
static __always_inline bool rq_ts_usable(void)
{
	return !force_start_map &&
	       bpf_core_field_exists(struct request, io_start_time_ns) &&
	       !bpf_core_field_exists(struct request___issue_stat, issue_stat) &&
	       bpf_core_field_exists(struct request_queue, stats);
}

/*
 * test_bit(QUEUE_FLAG_STATS, &q->queue_flags), evaluated from the state that
 * the flag mirrors. The flag number cannot be relocated portably: recent
 * kernels define QUEUE_FLAG_* in an anonymous enum (which libbpf CO-RE cannot
 * match) and older ones as macros (absent from BTF), and its value changed
 * across releases. block/blk-stat.c sets the flag exactly when the queue has a
 * stats callback (wbt, iolatency) or accounting users (iocost, bfq):
 * !list_empty(&stats->callbacks) || stats->accounting (enable_accounting
 * before 5.17), updated together under stats->lock.
 */
static __always_inline bool queue_collects_stats(struct request_queue *q, const bool direct)
{
	struct blk_queue_stats *s = RD(direct, q, stats);
	struct list_head *head;

	if (!s)
		return false;
	if (bpf_core_field_exists(s->accounting)) {
		if (RD(direct, s, accounting) > 0)
			return true;
	} else {
		struct blk_queue_stats___old *so = (void *)s;

		if (RD(direct, so, enable_accounting))
			return true;
	}
	head = &s->callbacks;
	return RD(direct, head, next) != head;
}

/* blk_rq_is_passthrough(): REQ_OP_SCSI_IN/OUT (32, 33; < 5.18), REQ_OP_DRV_IN/OUT (34, 35). */
static __always_inline bool op_is_passthrough(__u32 op)
{
	return op >= 32 && op <= 35;
}

/* MKDEV(disk->major, disk->first_minor), as the block tracepoints report it. */
static __always_inline __u32 request_dev(struct request *rq, struct request_queue *q,
					 const bool direct)
{
	struct gendisk *disk;

	if (bpf_core_field_exists(q->disk)) {
		disk = RD(direct, q, disk);
	} else {
		struct request___old *ro = (void *)rq;

		disk = RD(direct, ro, rq_disk);
	}
	if (!disk)
		return 0;
	return ((__u32)RD(direct, disk, major) << MINORBITS_) |
	       (__u32)RD(direct, disk, first_minor);
}

/* Adds one I/O of latency now - start_ns to the (dev, op) histogram. */
static __always_inline void record(__u32 dev, __u32 op, __u64 start_ns)
{
	struct hist_key hkey = { .dev = dev, .op = op };
	__u64 now = bpf_ktime_get_ns();
	struct hist *h;
	__u32 slot;

	/*
	 * Same clock (CLOCK_MONOTONIC) on both sides, but bpf_ktime_get_ns() is
	 * the NMI-safe fast accessor, which may lag ktime_get_ns() slightly:
	 * never compute a negative latency.
	 */
	if (start_ns > now) {
		count_drop(DROP_CLOCK);
		return;
	}
	slot = gadget_log2_slot((now - start_ns) / 1000);

	h = bpf_map_lookup_elem(&hists, &hkey);
	if (!h) {
		/* NOEXIST: another CPU may have inserted it meanwhile; keep theirs. */
		bpf_map_update_elem(&hists, &hkey, &zero_hist, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &hkey);
		if (!h) {
			count_drop(DROP_HISTS_FULL);
			return;
		}
	}
	__sync_fetch_and_add(&h->latency[slot], 1);
}

static __always_inline int handle_issue(struct request *rq, const bool direct)
{
	struct start_key key = {};
	struct request_queue *q;
	__u64 ts;

	q = RD(direct, rq, q);

	/*
	 * This tracepoint fires at the top of blk_mq_start_request(), which then
	 * stamps rq->io_start_time_ns under the same condition as tested here:
	 * completion will find the timestamp, so nothing to store.
	 */
	if (rq_ts_usable() && queue_collects_stats(q, direct) &&
	    !op_is_passthrough(RD(direct, rq, cmd_flags) & REQ_OP_MASK_))
		return 0;

	if (targ_dev && request_dev(rq, q, direct) != targ_dev)
		return 0;

	key.id = (__u64)rq;
	ts = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&start, &key, &ts, BPF_ANY))
		count_drop(DROP_START_FULL);
	return 0;
}

static __always_inline int handle_complete(struct request *rq, const bool direct)
{
	struct request_queue *q = RD(direct, rq, q);
	__u32 dev = request_dev(rq, q, direct);
	__u64 ts = 0;

	if (targ_dev && dev != targ_dev)
		return 0;

	/*
	 * 0 when the queue does not collect stats (reset at request allocation):
	 * then issue stored a start entry. (If stats were switched on between the
	 * issue check and the kernel's own test, an entry stays behind; it is
	 * keyed by the request pointer and overwritten when the request is reused.)
	 */
	if (rq_ts_usable())
		ts = RD(direct, rq, io_start_time_ns);
	if (!ts) {
		struct start_key key = { .id = (__u64)rq };
		__u64 *tsp = bpf_map_lookup_elem(&start, &key);

		if (!tsp) {
			/* Issued before attach, or its start was dropped. */
			count_drop(DROP_NO_START);
			return 0;
		}
		ts = *tsp;
		bpf_map_delete_elem(&start, &key);
	}

	record(dev, RD(direct, rq, cmd_flags) & REQ_OP_MASK_, ts);
	return 0;
}

/*
 * The request argument of block_rq_issue: ctx[1] on kernels < 5.11, where the
 * tracepoint is (struct request_queue *q, struct request *rq), else ctx[0].
 * Each load must keep a constant offset: left alone, clang turns the two loads
 * into one at ctx + 8 * <flag>, and the verifier refuses any
 * "modified ctx ptr" with a non-zero offset. The empty asm keeps two loads;
 * the frozen rodata flag then lets the verifier skip the one not taken (ctx[1]
 * does not exist on newer kernels).
 */
static __always_inline struct request *issue_rq(u64 *ctx)
{
	struct request *rq;

	if (gadget_kernel_version && gadget_kernel_version < KERNEL_VERSION(5, 11, 0)) {
		rq = (struct request *)ctx[1];
		asm volatile("" : "+r"(rq));
	} else {
		rq = (struct request *)ctx[0];
	}
	return rq;
}

/* --- tp_btf: typed arguments, direct loads ------------------------------- */

SEC("tp_btf/block_rq_issue")
int tpbtf_issue(u64 *ctx)
{
	return handle_issue(issue_rq(ctx), true);
}

/* block_rq_complete(struct request *rq, blk_status_t error, unsigned int nr_bytes) */
SEC("tp_btf/block_rq_complete")
int tpbtf_complete(u64 *ctx)
{
	return handle_complete((struct request *)ctx[0], true);
}

/*
 * --- raw tracepoint: same arguments as untyped u64s ----------------------
 * ctx is struct bpf_raw_tracepoint_args, but is indexed as a plain u64 array:
 * ctx->args[N] with N >= 1 emits a CO-RE relocation that aya 0.14 rejects
 * ("array index out of bounds"), failing the whole object.
 */

SEC("raw_tp/block_rq_issue")
int rawtp_issue(u64 *ctx)
{
	return handle_issue(issue_rq(ctx), false);
}

SEC("raw_tp/block_rq_complete")
int rawtp_complete(u64 *ctx)
{
	return handle_complete((struct request *)ctx[0], false);
}

/*
 * --- classic tracepoint: the trace record only -----------------------------
 * No request pointer (hence no request timestamp): key by {sector, dev}.
 */

/* Operation from the rwbs string; a leading 'F' is REQ_PREFLUSH ("FWS"). */
static __always_inline __u32 rwbs_op(char c0, char c1)
{
	char c = c0;

	if (c0 == 'F' && (c1 == 'R' || c1 == 'W' || c1 == 'D' || c1 == 'F'))
		c = c1;
	switch (c) {
	case 'R':
		return 0;	/* REQ_OP_READ */
	case 'W':
		return 1;	/* REQ_OP_WRITE */
	case 'D':
		return 3;	/* REQ_OP_DISCARD (and secure erase, "DE") */
	default:
		return 2;	/* REQ_OP_FLUSH ('F'), and anything else ('N') */
	}
}

SEC("tracepoint/block/block_rq_issue")
int tp_issue(struct trace_event_raw_block_rq *ctx)
{
	struct start_key key = {};
	__u64 ts;

	key.dev = ctx->dev;
	if (targ_dev && key.dev != targ_dev)
		return 0;
	key.id = ctx->sector;
	ts = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&start, &key, &ts, BPF_ANY))
		count_drop(DROP_START_FULL);
	return 0;
}

SEC("tracepoint/block/block_rq_complete")
int tp_complete(struct trace_event_raw_block_rq_completion *ctx)
{
	struct start_key key = {};
	__u64 *tsp, ts;

	key.dev = ctx->dev;
	if (targ_dev && key.dev != targ_dev)
		return 0;
	key.id = ctx->sector;
	tsp = bpf_map_lookup_elem(&start, &key);
	if (!tsp) {
		count_drop(DROP_NO_START);
		return 0;
	}
	ts = *tsp;
	bpf_map_delete_elem(&start, &key);

	record(key.dev, rwbs_op(ctx->rwbs[0], ctx->rwbs[1]), ts);
	return 0;
}
