/* Log2 histograms shared by gadgets and understood by the host. */
#ifndef GADGET_HISTOGRAM_H
#define GADGET_HISTOGRAM_H

/*
 * Slot k counts values in [2^(k-1), 2^k) (slot 0 counts the value 0); the
 * last slot also takes every larger value. The host exports slot k as the
 * bucket `le = 2^k`. 27 slots cover 0 .. 2^26 (~67 s when the unit is us).
 */
#define GADGET_HIST_SLOTS 27

/*
 * Histogram arrays are declared with these typedefs so that the host can
 * recognise them (and their counter width) from BTF by type name, as
 * Inspektor Gadget does.
 */
typedef __u64 gadget_histogram_slot__u64;
typedef __u32 gadget_histogram_slot__u32;

/*
 * floor(log2(v)) for v > 0 (0 for v == 0). Branch-free binary search on
 * halves: straight-line code, so the verifier sees no loop and the cost is
 * fixed (a dozen ALU instructions).
 */
static __always_inline __u32 gadget_log2_u32(__u32 v)
{
	__u32 r, shift;

	r = (v > 0xFFFF) << 4; v >>= r;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 gadget_log2_u64(__u64 v)
{
	__u32 hi = v >> 32, base = 0, x = (__u32)v;

	/* One shared u32 step (not one per half) keeps the program small. */
	if (hi) {
		x = hi;
		base = 32;
	}
	return gadget_log2_u32(x) + base;
}

/* Slot index: v == 0 ? 0 : floor(log2 v) + 1, clamped to the last slot. */
static __always_inline __u32 gadget_log2_slot(__u64 v)
{
	__u32 slot;

	if (v == 0)
		return 0;
	slot = gadget_log2_u64(v) + 1;
	/* The clamp also gives the verifier a bound for array indexing. */
	return slot < GADGET_HIST_SLOTS ? slot : GADGET_HIST_SLOTS - 1;
}

#endif /* GADGET_HISTOGRAM_H */
