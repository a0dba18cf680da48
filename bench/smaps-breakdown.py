#!/usr/bin/env python3
"""Where a process's resident memory is, from /proc/PID/smaps (bench/memory.sh).

Usage: smaps-breakdown.py PID [--json]

Each mapping goes into one class, in this order:
  thread stacks   an anonymous mapping holding a thread's stack pointer
                  (/proc/PID/task/*/syscall; a thread running at the moment of reading
                  is missed, its stack lands in "other anon")
  JIT code        anonymous executable mappings (wasmtime's compiled guests)
  malloc heap     [heap] (brk) and glibc's per-thread arenas: 64 MiB-aligned rw
                  mappings of at most 64 MiB
  guest memory    the accessible part of a wasmtime linear memory: an anonymous rw
                  mapping, not a malloc heap, followed by the PROT_NONE rest of its
                  reservation (at least 1 MiB)
  binary          file mappings of the gadget executable
  libraries       every other file mapping
  other anon      every other anonymous mapping (large malloc blocks, which glibc
                  maps on their own, wasmtime's instance data, the main stack, ...)
Prints one line per class: RSS KiB, mappings, virtual MiB, and the totals.
"""
import json
import os
import re
import sys

ARENA = 64 << 20  # glibc's HEAP_MAX_SIZE on 64-bit
# Smallest PROT_NONE rest of a linear memory's reservation (a thread stack's guard is a page).
GUEST_REST = 1 << 20
HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ (\d+)\s*(.*)$")
CLASSES = [
    "malloc heap",
    "guest memory",
    "JIT code",
    "thread stacks",
    "other anon",
    "binary",
    "libraries",
]


def stack_pointers(pid):
    sps = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                fields = f.read().split()
        except OSError:
            continue
        # "nr args... sp pc" for a thread blocked in a syscall; "running" otherwise.
        if len(fields) >= 3 and fields[0] != "running":
            sps.append(int(fields[-2], 16))
    return sps


def mappings(pid):
    maps = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = HEADER.match(line)
            if m:
                maps.append(
                    {
                        "lo": int(m.group(1), 16),
                        "hi": int(m.group(2), 16),
                        "perm": m.group(3),
                        "path": m.group(5).strip(),
                        "rss": 0,
                    }
                )
            elif line.startswith("Rss:") and maps:
                maps[-1]["rss"] = int(line.split()[1])
    return maps


def classify(pid):
    exe = os.path.realpath(f"/proc/{pid}/exe")
    sps = stack_pointers(pid)
    maps = mappings(pid)
    out = {c: {"rss_kib": 0, "mappings": 0, "virtual_mib": 0.0} for c in CLASSES}
    for i, m in enumerate(maps):
        size = m["hi"] - m["lo"]
        nxt = maps[i + 1] if i + 1 < len(maps) else None
        # The PROT_NONE rest of the same reservation, directly after this mapping.
        rest = (
            nxt["hi"] - nxt["lo"]
            if nxt and nxt["lo"] == m["hi"] and nxt["perm"].startswith("---") and not nxt["path"]
            else 0
        )
        path = m["path"]
        if path == "[heap]":
            c = "malloc heap"
        elif path.startswith("/"):
            c = "binary" if os.path.realpath(path) == exe else "libraries"
        elif path.startswith("["):
            c = "other anon"  # [stack], [vdso], [vvar], ...
        elif any(m["lo"] <= sp < m["hi"] for sp in sps):
            c = "thread stacks"
        elif "x" in m["perm"]:
            c = "JIT code"
        elif m["perm"].startswith("rw") and m["lo"] % ARENA == 0 and size <= ARENA:
            # (its PROT_NONE rest may have merged with a neighbouring reservation)
            c = "malloc heap"
        elif m["perm"].startswith("rw") and rest >= GUEST_REST:
            c = "guest memory"
        else:
            c = "other anon"
        out[c]["rss_kib"] += m["rss"]
        out[c]["mappings"] += 1
        out[c]["virtual_mib"] += size / (1 << 20)
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    pid = sys.argv[1]
    out = classify(pid)
    with open(f"/proc/{pid}/status") as f:
        status = dict(l.split(":", 1) for l in f if ":" in l)
    total = {
        "rss_kib": int(status["VmRSS"].split()[0]),
        "peak_kib": int(status["VmHWM"].split()[0]),
        "anon_kib": int(status["RssAnon"].split()[0]),
        "file_kib": int(status["RssFile"].split()[0]),
        "threads": int(status["Threads"]),
    }
    if "--json" in sys.argv:
        print(json.dumps({"classes": out, "total": total}))
        return
    print(f"{'class':16} {'RSS KiB':>9} {'maps':>5} {'virt MiB':>9}")
    for c in CLASSES:
        v = out[c]
        print(f"{c:16} {v['rss_kib']:9} {v['mappings']:5} {v['virtual_mib']:9.0f}")
    print(
        f"{'total':16} {total['rss_kib']:9}  (anon {total['anon_kib']}, file {total['file_kib']}, "
        f"peak {total['peak_kib']}, {total['threads']} threads)"
    )


if __name__ == "__main__":
    main()
