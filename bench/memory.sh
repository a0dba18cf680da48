#!/usr/bin/env bash
# bench/memory.sh - memory (and idle CPU) of profile_blockio: one `gadget run`, and a
# `gadget daemon` hosting 1, 10 and 100 detached instances.
#
# For each point: RSS, peak RSS (VmHWM), and where the resident memory is
# (bench/smaps-breakdown.py: malloc heap, guest memory, JIT code, thread stacks,
# other anon, the binary, libraries), the daemon's CPU while idle, and the time a
# /metrics scrape takes. The per-instance cost is the slope
#
#   (RSS at N2 - RSS at N1) / (N2 - N1)   for 10 -> 100 (and 1 -> 10)
#
# Usage: bench/memory.sh [--write FILE] [--check] [-h]
#   --write FILE  write/replace the markdown block (between the BEGIN/END
#                 bench/memory.sh markers) in FILE, keeping the rest of FILE
#   --check       exit 3 if a goal is missed: slope 10 -> 100 > SLOPE_GOAL_KIB,
#                 or the single run's RSS > RUN_GOAL_KIB
# Needs root, python3, curl, losetup. The daemon uses a private state directory,
# socket, store and port; every instance is deleted at the end.
# Environment (defaults in brackets):
#   GADGET_BIN [<repo>/target/release/gadget]
#   GADGET_REF [gadgets/profile_blockio]  (resolved from the repo root)
#   COUNTS ["1 10 100"]   instance counts, increasing
#   SETTLE [3]            seconds to wait after the last start before measuring
#   CPU_SECONDS [10]      idle CPU measured over this many seconds
#   SLOPE_GOAL_KIB [2048] RUN_GOAL_KIB [20480]
set -euo pipefail
export LC_ALL=C

PROG=${0##*/}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
GADGET_BIN=${GADGET_BIN:-$REPO/target/release/gadget}
GADGET_REF=${GADGET_REF:-gadgets/profile_blockio}
COUNTS=${COUNTS:-"1 10 100"}
SETTLE=${SETTLE:-3}
CPU_SECONDS=${CPU_SECONDS:-10}
SLOPE_GOAL_KIB=${SLOPE_GOAL_KIB:-2048}
RUN_GOAL_KIB=${RUN_GOAL_KIB:-20480}
MARK_BEGIN='<!-- BEGIN bench/memory.sh -->'
MARK_END='<!-- END bench/memory.sh -->'
BREAKDOWN=$BENCH_DIR/smaps-breakdown.py

WRITE_FILE=""
CHECK=0
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
log() { printf '%s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
while [ $# -gt 0 ]; do
	case $1 in
	--write) [ $# -ge 2 ] || die "--write needs a FILE"; WRITE_FILE=$2; shift 2 ;;
	--write=*) WRITE_FILE=${1#--write=}; shift ;;
	--check) CHECK=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
case $GADGET_BIN in /*) ;; */*) GADGET_BIN=$PWD/$GADGET_BIN ;; esac
if [ -n "$WRITE_FILE" ] && [ "${WRITE_FILE#/}" = "$WRITE_FILE" ]; then WRITE_FILE=$PWD/$WRITE_FILE; fi
case $GADGET_REF in /*) ;; *) GADGET_REF=$REPO/$GADGET_REF ;; esac
prev=0
for n in $COUNTS; do
	[[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -gt "$prev" ] || die "COUNTS must be increasing positive integers (got '$COUNTS')"
	prev=$n
done
MAX_COUNT=$prev

[ "$(id -u)" -eq 0 ] || die "must run as root (loads BPF programs, losetup)"
for c in python3 curl losetup truncate; do command -v "$c" >/dev/null 2>&1 || die "'$c' not found"; done
[ -x "$GADGET_BIN" ] || die "$GADGET_BIN not found: make host gadgets"
[ -f "$GADGET_REF/program.bpf.o" ] || die "$GADGET_REF/program.bpf.o not found: make gadgets"

WORK=""
LOOPDEV=""
DAEMON_PID=""
RUN_PID=""
cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM HUP
	if [ -n "$DAEMON_PID" ]; then
		for id in $(daemon_ids); do "$GADGET_BIN" --socket "$WORK/gadget.sock" delete "$id" >/dev/null 2>&1; done
		kill -TERM "$DAEMON_PID" 2>/dev/null; wait "$DAEMON_PID" 2>/dev/null
	fi
	[ -n "$RUN_PID" ] && { kill -INT "$RUN_PID" 2>/dev/null; wait "$RUN_PID" 2>/dev/null; }
	[ -n "$LOOPDEV" ] && losetup -d "$LOOPDEV"
	if [ -n "$WORK" ]; then
		if [ "$rc" -ne 0 ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
	fi
	exit "$rc"
}
daemon_ids() {
	"$GADGET_BIN" --socket "$WORK/gadget.sock" list -o json 2>/dev/null |
		python3 -c 'import json,sys; [print(i["id"]) for i in json.load(sys.stdin)]'
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

WORK=$(mktemp -d /tmp/gadget-memory.XXXXXX)
export GADGET_STORE=$WORK/oci-store
truncate -s 64M "$WORK/disk.img"   # on /tmp; the instances only need a disk to filter on
LOOPDEV=$(losetup -f --show "$WORK/disk.img")
DISK=${LOOPDEV#/dev/}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
field() { # JSON from smaps-breakdown.py, a python expression on it
	python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
idle_cpu_pct() { # PID: % of one core over CPU_SECONDS
	local a b hz
	hz=$(getconf CLK_TCK)
	a=$(cpu_ticks "$1"); sleep "$CPU_SECONDS"; b=$(cpu_ticks "$1")
	awk -v a="$a" -v b="$b" -v hz="$hz" -v s="$CPU_SECONDS" 'BEGIN { printf "%.2f", 100 * (b - a) / hz / s }'
}
scrape_ms() { # best of 5
	local best="" t i
	for i in 1 2 3 4 5; do
		t=$(curl -s -o /dev/null -w '%{time_total}' "http://$1/metrics")
		best=$(awk -v a="$best" -v b="$t" 'BEGIN { print (a == "" || b < a) ? b : a }')
	done
	awk -v t="$best" 'BEGIN { printf "%.1f", t * 1000 }'
}
ROWS=()
row() { # label json cpu scrape
	local label=$1 j=$2
	ROWS+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' "$label" \
		"$(field 'round(d["total"]["rss_kib"]/1024,1)' <<<"$j")" \
		"$(field 'round(d["total"]["peak_kib"]/1024,1)' <<<"$j")" \
		"$(field 'round(d["classes"]["malloc heap"]["rss_kib"]/1024,1)' <<<"$j")" \
		"$(field 'round(d["classes"]["guest memory"]["rss_kib"]/1024,1)' <<<"$j")" \
		"$(field 'round(d["classes"]["JIT code"]["rss_kib"]/1024,1)' <<<"$j")" \
		"$(field 'round(d["classes"]["thread stacks"]["rss_kib"]/1024,1)' <<<"$j")" \
		"$(field 'round(d["classes"]["other anon"]["rss_kib"]/1024,1)' <<<"$j")" \
		"$(field 'round((d["classes"]["binary"]["rss_kib"]+d["classes"]["libraries"]["rss_kib"])/1024,1)' <<<"$j")" \
		"$(field 'd["total"]["threads"]' <<<"$j")" \
		"$(field 'round(sum(c["virtual_mib"] for c in d["classes"].values())/1024,1)' <<<"$j")" \
		"$3" "$4")")
}

# ---------------------------------------------------------------- one `gadget run`
PORT=$(free_port)
log "gadget run $GADGET_REF --disk $DISK (metrics on 127.0.0.1:$PORT)"
"$GADGET_BIN" run "$GADGET_REF" --disk "$DISK" --annotate=blockio:metrics.collect=true \
	--otel-metrics-name blockio:blockio-metrics --otel-metrics-listen \
	--otel-metrics-listen-address "127.0.0.1:$PORT" >/dev/null 2>"$WORK/run.log" &
RUN_PID=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/metrics" >/dev/null 2>&1 && break; sleep 0.1; done
sleep "$SETTLE"
kill -0 "$RUN_PID" 2>/dev/null || die "gadget run exited: $(cat "$WORK/run.log")"
J=$(python3 "$BREAKDOWN" "$RUN_PID" --json)
row '`gadget run`' "$J" "$(idle_cpu_pct "$RUN_PID")" "$(scrape_ms "127.0.0.1:$PORT")"
RUN_RSS=$(field 'd["total"]["rss_kib"]' <<<"$J")
python3 "$BREAKDOWN" "$RUN_PID" >&2
kill -INT "$RUN_PID"; wait "$RUN_PID" || true; RUN_PID=""

# ---------------------------------------------------------------- the daemon
PORT=$(free_port)
"$GADGET_BIN" daemon --state-dir "$WORK/state" --socket "$WORK/gadget.sock" \
	--otel-metrics-listen-address "127.0.0.1:$PORT" --budget "daemon.max-instances=$MAX_COUNT" \
	>/dev/null 2>"$WORK/daemon.log" &
DAEMON_PID=$!
for _ in $(seq 300); do "$GADGET_BIN" --socket "$WORK/gadget.sock" list >/dev/null 2>&1 && break; sleep 0.1; done
sleep 1
J=$(python3 "$BREAKDOWN" "$DAEMON_PID" --json)
row "daemon, 0 instances" "$J" "" ""
declare -A RSS
have=0
for n in $COUNTS; do
	t0=$(date +%s.%N)
	while [ "$have" -lt "$n" ]; do
		"$GADGET_BIN" --socket "$WORK/gadget.sock" run "$GADGET_REF" --detach --disk "$DISK" \
			--annotate=blockio:metrics.collect=true --otel-metrics-name "blockio:blockio-metrics-$have" \
			>/dev/null 2>"$WORK/run.err" || die "starting instance $((have + 1)): $(cat "$WORK/run.err")"
		have=$((have + 1))
	done
	t1=$(date +%s.%N)
	sleep "$SETTLE"
	J=$(python3 "$BREAKDOWN" "$DAEMON_PID" --json)
	log "== daemon, $n instances (started in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s)"
	python3 "$BREAKDOWN" "$DAEMON_PID" >&2
	RSS[$n]=$(field 'd["total"]["rss_kib"]' <<<"$J")
	row "daemon, $n instances" "$J" "$(idle_cpu_pct "$DAEMON_PID")" "$(scrape_ms "127.0.0.1:$PORT")"
done

slope() { awk -v a="${RSS[$1]}" -v b="${RSS[$2]}" -v n1="$1" -v n2="$2" 'BEGIN { printf "%.0f", (b - a) / (n2 - n1) }'; }
SLOPES=()
prev=""
for n in $COUNTS; do
	[ -n "$prev" ] && SLOPES+=("$prev → $n: **$(slope "$prev" "$n") KiB** per instance")
	prev=$n
done
set -- $COUNTS
LAST_SLOPE=""
if [ $# -ge 2 ]; then
	LAST_SLOPE=$(slope "${@: -2:1}" "${@: -1}")
fi

GITREV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit")
INVOCATION="bench/memory.sh"
[ -n "$WRITE_FILE" ] && INVOCATION="$INVOCATION --write ${WRITE_FILE#"$REPO"/}"
VERDICT=PASS
[ -n "$LAST_SLOPE" ] && [ "$LAST_SLOPE" -gt "$SLOPE_GOAL_KIB" ] && VERDICT=FAIL
[ "$RUN_RSS" -gt "$RUN_GOAL_KIB" ] && VERDICT=FAIL
MD=$WORK/block.md
{
	echo "$MARK_BEGIN"
	echo "## Memory per instance (bench/memory.sh)"
	echo
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); kernel $(uname -r); $(nproc) CPUs; repo $GITREV"
	echo "- \`gadget run $GADGET_REF --disk $DISK\` with the Prometheus endpoint on, and a \`gadget daemon\` with N detached instances of it (each \`--disk $DISK --annotate=blockio:metrics.collect=true\`), measured $SETTLE s after the last start. MiB of RSS, from \`/proc/PID/smaps\` (bench/smaps-breakdown.py says how each mapping is classed); CPU is % of one core over ${CPU_SECONDS} s idle; scrape is the best of 5 \`/metrics\` fetches."
	echo
	echo "| process | RSS | peak | malloc heap | guest memory | JIT code | thread stacks | other anon | binary + libs | threads | virtual GiB | CPU % | scrape ms |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	printf '%s\n' "${ROWS[@]}"
	echo
	echo "- RSS per additional instance: $(IFS=';'; echo "${SLOPES[*]}" | sed 's/;/; /g') (goal ≤ $SLOPE_GOAL_KIB KiB)"
	echo "- \`gadget run\`: **$(awk -v k="$RUN_RSS" 'BEGIN { printf "%.1f", k / 1024 }') MiB** (goal ≤ $(( RUN_GOAL_KIB / 1024 )) MiB): $VERDICT"
	echo "- Command: \`$INVOCATION\`"
	echo "$MARK_END"
} > "$MD"
cat "$MD"

if [ -n "$WRITE_FILE" ]; then
	if [ -e "$WRITE_FILE" ] && grep -qxF "$MARK_BEGIN" "$WRITE_FILE"; then
		tmp=$(mktemp "$WRITE_FILE.XXXXXX")
		awk -v b="$MARK_BEGIN" -v e="$MARK_END" -v blk="$MD" '
			$0 == b { while ((getline l < blk) > 0) print l; skip = 1; next }
			$0 == e { skip = 0; next }
			!skip { print }' "$WRITE_FILE" > "$tmp"
		chmod --reference="$WRITE_FILE" "$tmp" 2>/dev/null || true
		mv "$tmp" "$WRITE_FILE"
	else
		{ [ -s "$WRITE_FILE" ] && { cat "$WRITE_FILE"; echo; }; cat "$MD"; } > "$WRITE_FILE.new"
		mv "$WRITE_FILE.new" "$WRITE_FILE"
	fi
	log "wrote the block to $WRITE_FILE"
fi
if [ "$CHECK" = 1 ] && [ "$VERDICT" != PASS ]; then
	log "check: a memory goal is missed ($VERDICT)"
	exit 3
fi
