#!/usr/bin/env bash
# bench/bpf-cost.sh - BPF CPU time per block I/O: our profile_blockio gadget vs
# libbpf-tools biolatency vs a bpftrace (tracepoint) biolatency.
#
# For each tool: start it in the background (filtered to the test disk), wait
# until its BPF programs are loaded and attached, snapshot run_time_ns/run_cnt
# (bpf_stats) of the programs that appeared since the start, run a fixed direct
# write workload on a loop device, snapshot again, stop the tool with SIGINT.
#
#   BPF ns per I/O = delta(sum run_time_ns over the tool's programs)
#                    / I/Os completed on the loop device during the workload
#
# I/Os completed = /sys/block/loopN/stat field 1 (reads) + field 5 (writes)
#                  + field 12 (discards) + field 16 (flushes), where present.
#
# Tools run interleaved (A B C A B C ...), R rounds; the median is reported.
#
# Usage: bench/bpf-cost.sh [--write FILE] [--check] [--keep-logs] [-h]
#   --write FILE  write/replace the markdown block (between the BEGIN/END
#                 bench/bpf-cost.sh markers) in FILE, keeping the rest of FILE
#   --check       exit 3 if ours/biolatency > TARGET (or was not measured)
#   --keep-logs   keep the tools' output in /tmp/bpf-cost.* (kept on failure anyway)
# Needs root, bpftool, jq or python3, losetup, dd; a tool that is missing is skipped.
# Environment (defaults in brackets):
#   COUNT [20000]         4 KiB direct writes per run
#   R [3]                 rounds (each tool runs R times, interleaved)
#   TOOLS ["ours biolatency bpftrace"]   subset / order of tools
#   GADGET_BIN [<repo>/target/release/gadget]
#   GADGET_REF [gadgets/profile_blockio]  (resolved from the repo root)
#   GADGET_ARGS [""]      extra args for the gadget (word-split)
#   BIOLATENCY [/usr/sbin/biolatency]  BPFTRACE [bpftrace]
#   TARGET [0.35]         goal: ours <= TARGET x biolatency
#   READY_TIMEOUT [60]    seconds to wait for a tool's programs to attach
#   SETTLE [1]            seconds the attached program set must stay unchanged
#   JSON_PARSER [auto]    jq or python3 (parses bpftool -j output)
#   MAX_LOAD [0.5]        warn if the 1-min load average is above this at start
#   IMG_SIZE [256M]       loop image size (in /dev/shm; grown to COUNT x 4 KiB if smaller)
set -euo pipefail
export LC_ALL=C   # sort/join/comm must agree on the collation

PROG=${0##*/}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

COUNT=${COUNT:-20000}
R=${R:-3}
TOOLS=${TOOLS:-"ours biolatency bpftrace"}
GADGET_BIN=${GADGET_BIN:-$REPO/target/release/gadget}
GADGET_REF=${GADGET_REF:-gadgets/profile_blockio}
GADGET_ARGS=${GADGET_ARGS:-}
BIOLATENCY=${BIOLATENCY:-/usr/sbin/biolatency}
BPFTRACE=${BPFTRACE:-bpftrace}
TARGET=${TARGET:-0.35}
READY_TIMEOUT=${READY_TIMEOUT:-60}
SETTLE=${SETTLE:-1}
IMG_SIZE=${IMG_SIZE:-256M}
MAX_LOAD=${MAX_LOAD:-0.5}
BT_SCRIPT=$BENCH_DIR/biolatency-tp.bt
MARK_BEGIN='<!-- BEGIN bench/bpf-cost.sh -->'
MARK_END='<!-- END bench/bpf-cost.sh -->'

WRITE_FILE=""
CHECK=0
KEEP_LOGS=0

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
log() { printf '%s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

while [ $# -gt 0 ]; do
	case $1 in
	--write) [ $# -ge 2 ] || die "--write needs a FILE"; WRITE_FILE=$2; shift 2 ;;
	--write=*) WRITE_FILE=${1#--write=}; shift ;;
	--check) CHECK=1; shift ;;
	--keep-logs) KEEP_LOGS=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) die "unknown argument '$1' (see --help)" ;;
	esac
done
# GADGET_BIN and --write FILE are relative to the caller's directory (tools run from the repo root)
case $GADGET_BIN in /*) ;; */*) GADGET_BIN=$PWD/$GADGET_BIN ;; esac
if [ -n "$WRITE_FILE" ] && [ "${WRITE_FILE#/}" = "$WRITE_FILE" ]; then
	WRITE_FILE=$PWD/$WRITE_FILE
fi

markers_ok() { # FILE: no markers, or exactly one BEGIN before exactly one END
	local f=$1 nb ne
	nb=$(grep -cxF "$MARK_BEGIN" "$f" || true)
	ne=$(grep -cxF "$MARK_END" "$f" || true)
	[ "$nb" -eq 0 ] && [ "$ne" -eq 0 ] && return 0
	[ "$nb" -eq 1 ] && [ "$ne" -eq 1 ] && \
		[ "$(grep -nxF "$MARK_BEGIN" "$f" | cut -d: -f1)" -lt "$(grep -nxF "$MARK_END" "$f" | cut -d: -f1)" ]
}
if [ -n "$WRITE_FILE" ]; then   # fail before measuring, not after
	[ -d "$(dirname "$WRITE_FILE")" ] || die "--write: directory of $WRITE_FILE does not exist"
	if [ -e "$WRITE_FILE" ]; then
		[ -w "$WRITE_FILE" ] || die "--write: $WRITE_FILE is not writable"
		markers_ok "$WRITE_FILE" || die "$WRITE_FILE has unbalanced '$MARK_BEGIN' / '$MARK_END' markers; fix it by hand"
	fi
fi

[[ $COUNT =~ ^[1-9][0-9]*$ ]] || die "COUNT must be a positive integer (got '$COUNT')"
[[ $R =~ ^[1-9][0-9]*$ ]] || die "R must be a positive integer (got '$R')"
[[ $READY_TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "READY_TIMEOUT must be a positive integer"
for t in $TOOLS; do
	case $t in ours|biolatency|bpftrace) ;; *) die "unknown tool '$t' in TOOLS (ours, biolatency, bpftrace)" ;; esac
done

# ---------------------------------------------------------------- state + cleanup
WORK=""
LOOPDEV=""
IMG=""
TOOL_PID=""
STATS_OLD=""
TRACEFS_MOUNTED=""

stop_pid() { # pid: SIGINT, then TERM, then KILL; returns the exit status
	local pid=$1 i rc=0
	kill -INT "$pid" 2>/dev/null || true
	for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		log "warning: pid $pid ignored SIGINT for 10 s, sending SIGTERM"
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || rc=$?
	return $rc
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM HUP
	if [ -n "$TOOL_PID" ]; then stop_pid "$TOOL_PID" >/dev/null 2>&1; TOOL_PID=""; fi
	if [ -n "$LOOPDEV" ]; then losetup -d "$LOOPDEV" 2>/dev/null || log "warning: could not detach $LOOPDEV"; fi
	[ -n "$IMG" ] && rm -f "$IMG"
	if [ -n "$STATS_OLD" ]; then sysctl -q -w kernel.bpf_stats_enabled="$STATS_OLD" >/dev/null 2>&1 \
		|| log "warning: could not restore kernel.bpf_stats_enabled=$STATS_OLD"; fi
	[ -n "$TRACEFS_MOUNTED" ] && umount "$TRACEFS_MOUNTED" 2>/dev/null
	if [ -n "$WORK" ]; then
		if [ "$KEEP_LOGS" = 1 ] || [ "$rc" -ne 0 ]; then log "logs kept in $WORK"; else rm -rf "$WORK"; fi
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "$PROG: interrupted"; exit 130' INT
trap 'log "$PROG: terminated"; exit 143' TERM HUP

# ---------------------------------------------------------------- prerequisites
[ "$(id -u)" -eq 0 ] || die "must run as root (bpf_stats, losetup, loading BPF programs)"
for c in bpftool losetup dd truncate sysctl awk sort; do
	command -v "$c" >/dev/null 2>&1 || die "'$c' not found (apt-get install -y bpftool util-linux coreutils procps gawk)"
done
JSON=${JSON_PARSER:-}   # jq | python3; normally auto-detected
case $JSON in ""|jq|python3) ;; *) die "JSON_PARSER must be jq or python3" ;; esac
if [ -n "$JSON" ]; then
	command -v "$JSON" >/dev/null 2>&1 || die "JSON_PARSER=$JSON not found"
elif command -v jq >/dev/null 2>&1; then
	JSON=jq
elif command -v apt-get >/dev/null 2>&1 && { log "jq missing: apt-get install -y jq"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null 2>&1; } && command -v jq >/dev/null 2>&1; then
	JSON=jq
elif command -v python3 >/dev/null 2>&1; then
	JSON=python3
else
	die "need jq or python3 to parse bpftool JSON"
fi

# json_filter progs      : stdin = 'bpftool prog show -j'      -> "id run_time_ns run_cnt type name"
# json_filter attached   : stdin = 'bpftool link/perf show -j' -> prog ids
# json_filter owned PIDS : stdin = 'bpftool perf show -j'      -> prog ids whose fd is held by one of PIDS
json_filter() {
	if [ "$JSON" = jq ]; then
		case $1 in
		progs) jq -r '.[]? | "\(.id) \(.run_time_ns // 0) \(.run_cnt // 0) \(.type // "-") \(.name // "-")"' ;;
		attached) jq -r '.[]? | .prog_id // empty' ;;
		owned) jq -r --arg pids " $2 " '.[]? | select(.prog_id != null and .pid != null)
			| .pid as $p | select($pids | contains(" \($p) ")) | .prog_id' ;;
		esac
	else
		python3 -c '
import json, sys
mode = sys.argv[1]
pids = set(sys.argv[2].split()) if len(sys.argv) > 2 else set()
for doc in sys.stdin.read().split("\n\x00\n"):
    doc = doc.strip()
    if not doc: continue
    for p in json.loads(doc):
        if mode == "progs":
            print(p["id"], p.get("run_time_ns", 0), p.get("run_cnt", 0), p.get("type", "-"), p.get("name", "-"))
        elif mode == "attached" and "prog_id" in p:
            print(p["prog_id"])
        elif mode == "owned" and "prog_id" in p and str(p.get("pid")) in pids:
            print(p["prog_id"])
' "$@"
	fi
}
prog_snapshot() { bpftool prog show -j 2>/dev/null | json_filter progs | sort -k1,1; }
attached_ids() {
	if [ "$JSON" = jq ]; then
		{ bpftool link show -j 2>/dev/null || echo '[]'; bpftool perf show -j 2>/dev/null || echo '[]'; } | json_filter attached | sort -u
	else
		{ bpftool link show -j 2>/dev/null || echo '[]'; printf '\n\0\n'; bpftool perf show -j 2>/dev/null || echo '[]'; } | json_filter attached | sort -u
	fi
}
SETSID=""
command -v setsid >/dev/null 2>&1 && SETSID=setsid
# ids of programs attached through an fd held by the given pids (bpftool perf show has the pid)
owned_ids() { { bpftool perf show -j 2>/dev/null || echo '[]'; } | json_filter owned "$*" | sort -u; }
tool_pids() { # the tool's pid + every process in its session (it runs under setsid)
	{ echo "$1"; if [ -n "$SETSID" ] && command -v pgrep >/dev/null 2>&1; then pgrep -s "$1" 2>/dev/null || true; fi; } | sort -u | tr '\n' ' '
}
bpftool prog show -j >/dev/null 2>&1 || die "'bpftool prog show -j' failed (is bpffs/BPF available? are you root?)"

# Tool availability: a missing tool is skipped with a message, not fatal.
RUN_TOOLS=""
SKIPPED=""
skip() { log "SKIP $1: $2"; SKIPPED="$SKIPPED $1"; }
for t in $TOOLS; do
	case $t in
	ours)
		if [ ! -x "$GADGET_BIN" ]; then
			skip ours "gadget binary '$GADGET_BIN' not found or not executable (cargo build --release, or set GADGET_BIN)"
			continue
		fi
		case $GADGET_REF in /*|./*|../*) ref_path=$GADGET_REF ;; *) ref_path=$REPO/$GADGET_REF ;; esac
		[ -e "$ref_path" ] || log "note: $ref_path does not exist; passing '$GADGET_REF' to the gadget as is"
		;;
	biolatency)
		if [ ! -x "$BIOLATENCY" ]; then
			skip biolatency "'$BIOLATENCY' not found (apt-get install -y libbpf-tools)"; continue
		fi ;;
	bpftrace)
		if ! command -v "$BPFTRACE" >/dev/null 2>&1; then
			skip bpftrace "'$BPFTRACE' not found (apt-get install -y bpftrace)"; continue
		fi
		[ -r "$BT_SCRIPT" ] || die "$BT_SCRIPT missing"
		# bpftrace reads tracepoint formats from tracefs
		if [ ! -e /sys/kernel/tracing/events/block/block_rq_issue ] && [ ! -e /sys/kernel/debug/tracing/events/block/block_rq_issue ]; then
			if mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null; then
				TRACEFS_MOUNTED=/sys/kernel/tracing
			fi
			[ -e /sys/kernel/tracing/events/block/block_rq_issue ] \
				|| { skip bpftrace "tracefs has no block:block_rq_issue tracepoint (mount -t tracefs nodev /sys/kernel/tracing)"; continue; }
		fi ;;
	esac
	RUN_TOOLS="$RUN_TOOLS $t"
done
RUN_TOOLS=${RUN_TOOLS# }
[ -n "$RUN_TOOLS" ] || die "no tool to measure"

# ---------------------------------------------------------------- setup
WORK=$(mktemp -d /tmp/bpf-cost.XXXXXX)
IMG=$(mktemp /dev/shm/bpf-cost.XXXXXX.img)
truncate -s "$IMG_SIZE" "$IMG" || die "truncate -s $IMG_SIZE failed"
need_bytes=$(( COUNT * 4096 ))
if [ "$(stat -c %s "$IMG")" -lt "$need_bytes" ]; then truncate -s "$need_bytes" "$IMG"; fi   # dd must not hit ENOSPC
LOOPDEV=$(losetup -f --show "$IMG") || die "losetup failed"
DISK=${LOOPDEV#/dev/}
STAT=/sys/block/$DISK/stat
[ -r "$STAT" ] || die "$STAT not readable"
NF_STAT=$(awk '{print NF; exit}' "$STAT")
FIELDS="reads (1) + writes (5)"
if [ "$NF_STAT" -ge 12 ]; then FIELDS="$FIELDS + discards (12)"; fi
if [ "$NF_STAT" -ge 16 ]; then FIELDS="$FIELDS + flushes (16)"; fi
IFS=: read -r MAJ MIN < "/sys/block/$DISK/dev"
DEVT=$(( (MAJ << 20) | MIN ))   # kernel-internal dev_t, as in the block tracepoints

STATS_OLD=$(sysctl -n kernel.bpf_stats_enabled) || die "cannot read kernel.bpf_stats_enabled"
sysctl -q -w kernel.bpf_stats_enabled=1 >/dev/null || die "cannot enable kernel.bpf_stats_enabled"

tool_cmd() { # tool -> fills array CMD
	case $1 in
	ours) CMD=("$GADGET_BIN" run "$GADGET_REF" --disk "$DISK"); if [ -n "$GADGET_ARGS" ]; then read -r -a extra <<< "$GADGET_ARGS"; CMD+=("${extra[@]}"); fi ;;
	biolatency) CMD=("$BIOLATENCY" -d "$DISK") ;;
	bpftrace) CMD=("$BPFTRACE" "$BT_SCRIPT" "$DEVT") ;;
	esac
}
tool_label() {
	case $1 in
	ours) echo "ours (profile_blockio)" ;;
	biolatency) echo "libbpf-tools biolatency" ;;
	bpftrace) echo "bpftrace (tracepoints)" ;;
	esac
}
tool_cmd_display() { # command as shown in the report (repo-relative where possible)
	local s
	tool_cmd "$1"
	s=${CMD[*]}
	s=${s//$REPO\//}
	echo "$s"
}

disk_ios() { # completed I/Os: reads(1) + writes(5) + discards(12) + flushes(16) if present
	awk '{ n = $1 + $5; if (NF >= 12) n += $12; if (NF >= 16) n += $16; print n }' "$STAT"
}

workload() {
	dd if=/dev/zero of="$LOOPDEV" bs=4k count="$COUNT" oflag=direct status=none \
		|| die "workload dd on $LOOPDEV failed"
}

log "device: $LOOPDEV (dev_t $MAJ:$MIN = $DEVT), image $IMG ($(stat -c %s "$IMG") bytes)"
log "workload: dd if=/dev/zero of=$LOOPDEV bs=4k count=$COUNT oflag=direct; rounds R=$R; tools: $RUN_TOOLS"
log "I/Os counted from $STAT ($NF_STAT fields): $FIELDS"
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$LOAD0" -v m="$MAX_LOAD" 'BEGIN { exit !(l > m) }'; then
	log "warning: machine not idle (1-min load $LOAD0 > $MAX_LOAD): other CPU work inflates run_time_ns; numbers will be noisy"
fi
log "warm-up run (no tool)..."
workload

# ---------------------------------------------------------------- one measurement
RUNS=$WORK/runs.tsv      # tool round ios drt dcnt nprogs
PROGS=$WORK/progs.tsv    # tool round id name drt dcnt
: > "$RUNS"; : > "$PROGS"

# Prints the ids to measure: programs that appeared since the tool started AND are attached
# through an fd the tool's processes hold (bpftool perf show), so programs that other
# processes load meanwhile are not counted. If no program can be tied to the tool's pids
# (e.g. links pinned in bpffs), it falls back to every new attached program (ATTRIB=any).
ATTRIB=""
wait_ready() { # before_file pid logfile
	local before=$1 pid=$2 logf=$3 deadline=$((SECONDS + READY_TIMEOUT)) last="" cur new owned stable=0 mode
	local need=$(( SETTLE * 10 ))
	[ "$need" -ge 1 ] || need=1
	while :; do
		if ! kill -0 "$pid" 2>/dev/null; then
			local st=0
			wait "$pid" 2>/dev/null || st=$?
			TOOL_PID=""
			log "---- tool output ($logf):"; tail -n 30 "$logf" >&2 || true
			die "tool exited (status $st) before its BPF programs were attached: ${CMD[*]}"
		fi
		new=$(prog_snapshot | awk '{print $1}' | comm -13 "$before" - || true)
		cur=""; mode=""
		if [ -n "$new" ]; then
			owned=$(owned_ids $(tool_pids "$pid") | comm -12 - <(printf '%s\n' "$new") || true)
			if [ -n "$owned" ]; then
				cur=$owned; mode=pid
			else
				cur=$(attached_ids | comm -12 - <(printf '%s\n' "$new") || true); mode=any
			fi
		fi
		if [ -n "$cur" ] && [ "$mode $cur" = "$last" ]; then
			stable=$((stable + 1))
			if [ "$stable" -ge "$need" ]; then
				ATTRIB=$mode
				printf '%s\n' "$cur"
				return 0
			fi
		else
			stable=0; last="$mode $cur"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "---- tool output ($logf):"; tail -n 30 "$logf" >&2 || true
			die "timeout (${READY_TIMEOUT}s) waiting for the tool's BPF programs to be loaded and attached (new prog ids: $(echo $new))"
		fi
		sleep 0.1
	done
}

measure() { # tool round
	local tool=$1 round=$2 logf=$WORK/$1-$2.log before=$WORK/before ids=$WORK/ids s1=$WORK/s1 s2=$WORK/s2
	local io1 io2 ios line drt dcnt nprogs rc
	tool_cmd "$tool"
	prog_snapshot | awk '{print $1}' > "$before"
	# Own session (setsid does not fork here: the subshell is no group leader), so a
	# Ctrl+C on the terminal reaches only this script, whose trap then stops the tool.
	( cd "$REPO" && exec $SETSID "${CMD[@]}" ) > "$logf" 2>&1 &
	TOOL_PID=$!
	wait_ready "$before" "$TOOL_PID" "$logf" > "$ids.raw"   # not in a pipeline: 'wait' must see the tool
	sort "$ids.raw" > "$ids"
	[ -s "$ids" ] || die "no BPF programs found for $tool"
	[ "$ATTRIB" = pid ] || log "warning: $tool: no program tied to its pid by 'bpftool perf show'; counting every new attached program"

	prog_snapshot | join - "$ids" > "$s1"
	io1=$(disk_ios)
	workload
	io2=$(disk_ios)
	prog_snapshot | join - "$ids" > "$s2"

	rc=0; stop_pid "$TOOL_PID" || rc=$?
	TOOL_PID=""
	[ "$rc" -eq 0 ] || [ "$rc" -eq 130 ] || log "warning: $tool exited with status $rc (log: $logf)"

	[ "$(wc -l < "$s2")" -eq "$(wc -l < "$ids")" ] || die "$tool: some of its BPF programs disappeared during the workload"
	ios=$((io2 - io1))
	[ "$ios" -gt 0 ] || die "no I/O completed on $DISK during the workload"
	# per program deltas: id name drt dcnt
	join "$s1" "$s2" | awk -v t="$tool" -v r="$round" '{ printf "%s\t%s\t%s\t%s\t%.0f\t%.0f\n", t, r, $1, $5, $6-$2, $7-$3 }' >> "$PROGS"
	line=$(join "$s1" "$s2" | awk '{ drt += $6-$2; dcnt += $7-$3; n++ } END { printf "%.0f %.0f %d", drt, dcnt, n }')
	read -r drt dcnt nprogs <<< "$line"
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$round" "$ios" "$drt" "$dcnt" "$nprogs" >> "$RUNS"
	[ "$ios" -eq "$COUNT" ] || log "note: $ios I/Os completed on $DISK (expected $COUNT)"
	[ "$dcnt" -ge "$ios" ] || log "warning: $tool programs ran $dcnt times for $ios I/Os: are they attached to the right hooks?"
	if [ "$tool" = ours ]; then
		local n
		for n in tpbtf_issue tpbtf_complete; do
			awk '{print $5}' "$s2" | grep -qx "$n" || log "note: expected program '$n' not among ours: $(awk '{print $5}' "$s2" | tr '\n' ' ')"
		done
	fi
	awk -v t="$tool" -v r="$round" -v ios="$ios" -v drt="$drt" -v dcnt="$dcnt" -v np="$nprogs" 'BEGIN {
		printf "  round %d %-11s %6.1f ns/I/O  (%d progs, %.0f runs, %.0f I/Os)\n", r, t, drt / ios, np, dcnt, ios }' >&2
}

for round in $(seq 1 "$R"); do
	for tool in $RUN_TOOLS; do
		measure "$tool" "$round"
	done
done

# ---------------------------------------------------------------- report
median() { # values on stdin -> median
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
per_io() { awk -F'\t' -v t="$1" '$1 == t { printf "%.3f\n", $4 / $3 }' "$RUNS"; }
med_of() { per_io "$1" | median; }
min_of() { per_io "$1" | sort -g | head -n1; }
max_of() { per_io "$1" | sort -g | tail -n1; }
med_ios() { awk -F'\t' -v t="$1" '$1 == t { print $3 }' "$RUNS" | median; }
med_runs_per_io() { awk -F'\t' -v t="$1" '$1 == t { printf "%.3f\n", $5 / $3 }' "$RUNS" | median | awk '{ printf "%.3f", $1 }'; }
prog_breakdown() { # "name N ns/run; ..." aggregated over all rounds
	awk -F'\t' -v t="$1" '$1 == t { rt[$4] += $5; c[$4] += $6; if (!($4 in seen)) { seen[$4] = 1; ord[n++] = $4 } }
		END { for (i = 0; i < n; i++) { k = ord[i]; printf "%s%s %.0f", (i ? ", " : ""), k, (c[k] ? rt[k] / c[k] : 0) } }' "$PROGS"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }
has() { case " $RUN_TOOLS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

declare -A MED
for t in $RUN_TOOLS; do MED[$t]=$(med_of "$t"); done

echo
printf '%-26s %12s %20s %10s %10s  %s\n' "tool" "ns/I/O(med)" "min-max" "I/Os(med)" "runs/I/O" "per program ns/run (all rounds)"
for t in $RUN_TOOLS; do
	printf '%-26s %12.1f %20s %10s %10s  %s\n' "$(tool_label "$t")" "${MED[$t]}" \
		"$(printf '%.1f-%.1f' "$(min_of "$t")" "$(max_of "$t")")" "$(med_ios "$t")" "$(med_runs_per_io "$t")" "$(prog_breakdown "$t")"
done
for t in $SKIPPED; do printf '%-26s %12s\n' "$(tool_label "$t")" "skipped"; done

R_BL="n/a"; R_BT="n/a"; VERDICT="not measured"
if has ours && has biolatency; then
	R_BL=$(ratio "${MED[ours]}" "${MED[biolatency]}")
	if awk -v r="$R_BL" -v t="$TARGET" 'BEGIN { exit !(r <= t) }'; then VERDICT="PASS"; else VERDICT="FAIL"; fi
fi
if has ours && has bpftrace; then R_BT=$(ratio "${MED[ours]}" "${MED[bpftrace]}"); fi
echo
echo "ours / biolatency = $R_BL   (target <= $TARGET: $VERDICT)"
echo "ours / bpftrace   = $R_BT"

# ---------------------------------------------------------------- markdown block
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
INVOCATION="COUNT=$COUNT R=$R bench/bpf-cost.sh"
[ -n "$WRITE_FILE" ] && INVOCATION="$INVOCATION --write ${WRITE_FILE#"$REPO"/}"
GITREV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit")

MD=$WORK/block.md
{
	echo "$MARK_BEGIN"
	echo "## BPF CPU per block I/O (bench/bpf-cost.sh)"
	echo
	echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); kernel $(uname -r); $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)); load avg at start $LOAD0, at end $(cut -d' ' -f1 /proc/loadavg); repo $GITREV"
	echo "- Workload: \`dd if=/dev/zero of=/dev/$DISK bs=4k count=$COUNT oflag=direct\` on a loop device over a file in /dev/shm (one request per write); COUNT=$COUNT, R=$R rounds, tools interleaved, median reported"
	echo "- Metric: Δ sum of \`run_time_ns\` (bpf_stats) over the programs the tool loaded ÷ I/Os completed on /dev/$DISK (\`/sys/block/$DISK/stat\`: $FIELDS). Every tool filters to the test disk."
	echo "- Peers: libbpf-tools $(pkgver libbpf-tools), bpftrace $(pkgver bpftrace)"
	echo
	echo "| tool | command | BPF ns / I/O (median) | min–max | per program, ns/run |"
	echo "| --- | --- | ---: | ---: | --- |"
	for t in $RUN_TOOLS; do
		printf '| %s | `%s` | %.0f | %.0f–%.0f | %s |\n' "$(tool_label "$t")" "$(tool_cmd_display "$t")" "${MED[$t]}" "$(min_of "$t")" "$(max_of "$t")" "$(prog_breakdown "$t")"
	done
	for t in $SKIPPED; do printf '| %s | `%s` | skipped | | |\n' "$(tool_label "$t")" "$(tool_cmd_display "$t")"; done
	echo
	echo "- ours / biolatency = **$R_BL** (target ≤ $TARGET: $VERDICT)"
	echo "- ours / bpftrace = **$R_BT**"
	echo "- Command: \`$INVOCATION\`"
	echo "$MARK_END"
} > "$MD"

echo
echo "----- markdown -----"
cat "$MD"
echo "--------------------"

if [ -n "$WRITE_FILE" ]; then
	if [ -e "$WRITE_FILE" ]; then
		markers_ok "$WRITE_FILE" || die "$WRITE_FILE has unbalanced '$MARK_BEGIN' / '$MARK_END' markers; fix it by hand"
		tmp=$(mktemp "$WRITE_FILE.XXXXXX")
		if ! grep -qxF "$MARK_BEGIN" "$WRITE_FILE"; then
			{ cat "$WRITE_FILE"; [ -s "$WRITE_FILE" ] && [ -n "$(tail -c1 "$WRITE_FILE")" ] && echo; [ -s "$WRITE_FILE" ] && echo; cat "$MD"; } > "$tmp"
		else
			awk -v b="$MARK_BEGIN" -v e="$MARK_END" -v blk="$MD" '
				$0 == b { while ((getline l < blk) > 0) print l; skip = 1; next }
				$0 == e { skip = 0; next }
				!skip { print }' "$WRITE_FILE" > "$tmp"
		fi
		chmod --reference="$WRITE_FILE" "$tmp" 2>/dev/null || true
		mv "$tmp" "$WRITE_FILE"
	else
		{ echo "# Benchmarks"; echo; cat "$MD"; } > "$WRITE_FILE"
	fi
	log "wrote the block to $WRITE_FILE"
fi

if [ "$CHECK" = 1 ] && [ "$VERDICT" != PASS ]; then
	log "check: ours/biolatency = $R_BL, target <= $TARGET ($VERDICT)"
	exit 3
fi
