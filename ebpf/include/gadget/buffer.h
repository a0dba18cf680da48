/* Sending events to user space (Inspektor Gadget compatible). */
#ifndef GADGET_BUFFER_H
#define GADGET_BUFFER_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

/* The largest event gadget_reserve_buf() can hand out on the perf buffer path. */
#ifndef GADGET_MAX_EVENT_SIZE
#define GADGET_MAX_EVENT_SIZE 10240
#endif

/*
 * GADGET_TRACER_MAP(name, size) declares the ring buffer `name` of `size`
 * bytes (a power of two, a multiple of the page size) that a GADGET_TRACER
 * sends its events through. The marker symbol gadget_map_tracer_<name> tells
 * the host which map it is; on kernels without ring buffers the host turns it
 * into a perf event array, and the helpers below take the perf path.
 */
#define GADGET_TRACER_MAP(name, size)                                          \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_RINGBUF);                            \
		__uint(max_entries, size);                                     \
	} name SEC(".maps");                                                   \
	const void *gadget_map_tracer_##name __attribute__((unused, used));

#ifndef GADGET_NO_BUF_RESERVE
/* Scratch space for one event per CPU, for the perf buffer path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, GADGET_MAX_EVENT_SIZE);
} gadget_heap SEC(".maps");

/*
 * Room for one event of `size` bytes: in the ring buffer itself, or (no ring
 * buffers) in this CPU's scratch space. NULL when the ring buffer is full: the
 * host counts such events as lost from the ring buffer's own accounting.
 */
static __always_inline void *gadget_reserve_buf(void *map, __u64 size)
{
	static const int zero = 0;

	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_ringbuf_reserve))
		return bpf_ringbuf_reserve(map, size, 0);
	return bpf_map_lookup_elem(&gadget_heap, &zero);
}

/* Gives back a reserved event without sending it. */
static __always_inline void gadget_discard_buf(void *buf)
{
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_ringbuf_discard))
		bpf_ringbuf_discard(buf, 0);
}

/* Sends a reserved event. */
static __always_inline long gadget_submit_buf(void *ctx, void *map, void *buf,
					      __u64 size)
{
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_ringbuf_submit)) {
		bpf_ringbuf_submit(buf, 0);
		return 0;
	}
	return bpf_perf_event_output(ctx, map, BPF_F_CURRENT_CPU, buf, size);
}
#endif /* GADGET_NO_BUF_RESERVE */

/* Copies an event built elsewhere (on the stack) into the buffer. */
static __always_inline long gadget_output_buf(void *ctx, void *map, void *buf,
					      __u64 size)
{
	if (bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_ringbuf_output))
		return bpf_ringbuf_output(map, buf, size, 0);
	return bpf_perf_event_output(ctx, map, BPF_F_CURRENT_CPU, buf, size);
}

#endif /* GADGET_BUFFER_H */
