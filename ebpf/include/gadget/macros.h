/* Shared conventions for gadget eBPF programs (Inspektor Gadget compatible). */
#ifndef GADGET_MACROS_H
#define GADGET_MACROS_H

/*
 * GADGET_MAPITER(name, mapname) exposes the map `mapname` as the datasource
 * `name`: the host reads the map on every tick, without deleting entries: keep the
 * counts cumulative in the kernel.
 *
 * Nothing references the variable; only its symbol name matters. The host
 * scans the ELF symbol table for `gadget_mapiter_<name>___<mapname>` (three
 * underscores separate the two parts, as in Inspektor Gadget). A non-static
 * global is always emitted by clang; `used` additionally protects it from
 * being dropped by LTO/linkers. It lives in .bss (8 bytes, never touched).
 */
#define GADGET_MAPITER(name, mapname)                                          \
	const void *gadget_mapiter_##name##___##mapname                        \
		__attribute__((unused, used));

/*
 * GADGET_TRACER(name, map, event) makes the events the program sends through
 * `map` (a GADGET_TRACER_MAP, <gadget/buffer.h>) the datasource `name`; their
 * fields are the members of `struct event`, read from BTF (nested structs
 * flattened as IG names them: proc.comm, proc.parent.pid). As in Inspektor
 * Gadget, the host finds the symbol gadget_tracer_<name>___<map>___<event>, and
 * the pointer __gadget_tracer_type_<name> keeps the struct's BTF in the object
 * even if no code names the type.
 */
#define GADGET_TRACER(name, map_name, event_type)                              \
	const void *gadget_tracer_##name##___##map_name##___##event_type       \
		__attribute__((unused, used));                                 \
	const struct event_type *__gadget_tracer_type_##name                   \
		__attribute__((unused, used));

/*
 * Set by the host before loading to KERNEL_VERSION(a, b, c) of the running
 * kernel (0 if unknown), so a program can choose between tracepoint
 * prototypes that changed across kernels; the verifier prunes the branch not
 * taken because .rodata is frozen.
 */
const volatile __u32 gadget_kernel_version = 0;

#endif /* GADGET_MACROS_H */
