import json, subprocess, time, sys
def stat(): return [int(x) for x in open('/sys/block/loop0/stat').read().split()]
def comp(f): return f[0]+f[4]+f[11]+f[15]
for i in range(int(sys.argv[1])):
    time.sleep(0.3)
    sb = stat(); tb = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    subprocess.run(["dd","if=/dev/zero","bs=4k","oflag=direct","status=none","of=/dev/loop0","count=3000"],check=True)
    sa = stat(); ta = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    print(json.dumps(dict(kernel=comp(sa)-comp(sb), printed=-1, t=dict(att=tb, before=tb, after=ta, end=ta))), flush=True)
