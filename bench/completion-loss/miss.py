import json, sys
ev = []
for l in open('/tmp/completion-loss-events.txt'):
    p = l.split()
    if len(p) >= 5 and p[0] in 'ICSDQNBbcdE':
        ev.append((p[0], int(p[1]), int(p[2]), p[3], int(p[4]), ' '.join(p[5:])))
ev.sort(key=lambda e: e[1])
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r['kernel'] == r['printed']: continue
    t = r['t']
    run = [e for e in ev if t['att'] <= e[1] <= t['end']]
    pending = {}
    order = []
    for idx, e in enumerate(run):
        if e[0] == 'I':
            pending[e[2]] = idx
        elif e[0] == 'C':
            pending.pop(e[2], None)
    for s, idx in pending.items():
        print('missing completion for sector', s, 'issued at', run[idx])
        for e in run[max(0, idx-8): idx+12]:
            print('   ', e[0], (e[1]-run[idx][1])/1000, 'us', e[2], e[3], 'cpu', e[4])
