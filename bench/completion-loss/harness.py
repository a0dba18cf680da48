#!/usr/bin/env python3
"""Reproduce the one-I/O loss outside cargo, with a bpftrace event log alongside."""
import json, os, re, signal, subprocess, sys, time

GADGET = os.environ.get("GADGET", "/work/main/target/release/gadget")
GDIR = os.environ.get("GDIR", "/work/main/gadgets/profile_blockio")

def mono():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)

def stat(name):
    f = [int(x) for x in open(f"/sys/block/{name}/stat").read().split()]
    return f

def completed(f):
    return f[0] + f[4] + f[11] + f[15]

def wait_quiet(name):
    last = completed(stat(name)); since = time.time(); start = time.time()
    while time.time() - since < 0.7 and time.time() - start < 10:
        time.sleep(0.1)
        now = completed(stat(name))
        if now != last:
            last = now; since = time.time()

def map_ids():
    out = subprocess.run(["bpftool", "map", "show", "-j"], capture_output=True).stdout
    return {m["id"]: m.get("name") for m in json.loads(out)}

def prog_misses():
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True).stdout
    return {p["id"]: p.get("recursion_misses", 0) for p in json.loads(out)}

def dump(mid):
    out = subprocess.run(["bpftool", "map", "dump", "id", str(mid), "-j"], capture_output=True).stdout
    return json.loads(out)

def hists_total(entries):
    tot = 0
    for e in entries:
        v = e.get("formatted", {}).get("value")
        if isinstance(v, dict):
            for slot in v.get("latency", []):
                tot += slot
        else:
            raw = [int(b, 16) for b in e["value"]]
            for i in range(0, len(raw), 8):
                tot += int.from_bytes(bytes(raw[i:i+8]), "little")
    return tot

def main():
    name = sys.argv[1]
    extra = sys.argv[2:]
    ex_maps = map_ids(); ex_progs = prog_misses()
    t0 = mono()
    g = subprocess.Popen([GADGET, "run", GDIR, "--disk", name, "--interval", "300ms", *extra],
                         stdout=subprocess.PIPE, stderr=open("/tmp/completion-loss-gadget.err", "w"))
    while "attached " not in open("/tmp/completion-loss-gadget.err").read():
        time.sleep(0.05)
        if g.poll() is not None:
            print("gadget died", open("/tmp/completion-loss-gadget.err").read()); sys.exit(2)
    t_att = mono()
    wait_quiet(name)
    t_b = mono(); sb = stat(name)
    subprocess.run(["dd", "if=/dev/zero", "bs=4k", "oflag=direct", "status=none", f"of=/dev/{name}", "count=3000"], check=True)
    sa = stat(name); t_a = mono()
    new_maps = {i: n for i, n in map_ids().items() if i not in ex_maps}
    misses = sum(m for i, m in prog_misses().items() if i not in ex_progs)
    drops = {}
    htot = None
    for i, n in new_maps.items():
        if n == "drops":
            for e in dump(i):
                f = e.get("formatted", e)
                drops[f["key"]] = f["value"]
        if n == "hists":
            htot = hists_total(dump(i))
    t_dump = mono()
    sd = stat(name)
    g.send_signal(signal.SIGINT)
    out, _ = g.communicate()
    t_end = mono()
    se = stat(name)
    frames = out.decode().split("\nlatency")
    last = frames[-1]
    total = sum(int(m.group(1)) for m in re.finditer(r"->\s+\d+\s+:\s+(\d+)", last))
    k = completed(sa) - completed(sb)
    res = dict(kernel=k, printed=total, map_before_int=htot, misses=misses, drops=drops,
               fields_delta=[a - b for a, b in zip(sa, sb)][:17:],
               after_to_dump=completed(sd) - completed(sa), dump_to_end=completed(se) - completed(sd),
               t=dict(start=t0, att=t_att, before=t_b, after=t_a, dump=t_dump, end=t_end))
    print(json.dumps(res))

main()
