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
 * Set by the host before loading to KERNEL_VERSION(a, b, c) of the running
 * kernel (0 if unknown), so a program can choose between tracepoint
 * prototypes that changed across kernels; the verifier prunes the branch not
 * taken because .rodata is frozen.
 */
const volatile __u32 gadget_kernel_version = 0;

#endif /* GADGET_MACROS_H */
