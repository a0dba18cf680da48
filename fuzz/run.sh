#!/usr/bin/env bash
# Runs one fuzz target (built by `cargo fuzz build`, see the Makefile) under a memory cap and
# a per-input timeout, so a parser that runs away fails the run instead of the machine.
#
#   fuzz/run.sh check TARGET      every checked-in seed of fuzz/corpus/TARGET once
#   fuzz/run.sh fuzz TARGET SECS  coverage-guided fuzzing for SECS seconds from the seeds
#   fuzz/run.sh smoke TARGET SECS both, quietly: one summary line, the log's tail on failure
#   fuzz/run.sh open TARGET       each input of fuzz/open/TARGET (open findings): still failing?
#
# New inputs go to fuzz/scratch/TARGET (never into the checked-in corpus); a crash, timeout
# or out-of-memory input is written to fuzz/artifacts/TARGET/ and the run exits non-zero.
# Limits: FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT seconds per input (default 10),
# FUZZ_MAX_LEN bytes per generated input (default 131072: the largest seed, an IG archive,
# fits; the YAML seeds with 20000 keys are replayed whole but not mutated at full size).
set -euo pipefail
mode=$1 target=$2 secs=${3:-60}
here=$(cd "$(dirname "$0")" && pwd)
bin=$here/target/x86_64-unknown-linux-gnu/release/$target
corpus=$here/corpus/$target
scratch=$here/scratch/$target
artifacts=$here/artifacts/$target
rss=${FUZZ_RSS_MB:-2048}
mkdir -p "$corpus" "$scratch" "$artifacts"
[ -x "$bin" ] || { echo "fuzz/run.sh: $bin is not built (make fuzz-build)" >&2; exit 2; }
limits=(-rss_limit_mb="$rss" -malloc_limit_mb="$rss" -timeout="${FUZZ_TIMEOUT:-10}"
        -artifact_prefix="$artifacts/" -print_final_stats=1)
# Scratch files of the targets that write (archive_import, registry_auth) go to tmpfs.
export GADGET_FUZZ_TMP=${GADGET_FUZZ_TMP:-/dev/shm}
if [ "$mode" = open ]; then
    for f in "$here/open/$target"/*; do
        [ -f "$f" ] || continue
        if out=$("$bin" "${limits[@]}" "$f" 2>&1); then
            echo "open $target/$(basename "$f"): passes now; move it to fuzz/corpus/$target/"
        else
            what=$(grep -o -m1 -E 'ERROR: libFuzzer: [a-z-]+|panicked at .*' <<<"$out" || true)
            echo "open $target/$(basename "$f"): still fails (${what:-exit status})"
        fi
    done
    exit 0
fi
if [ "$mode" = smoke ]; then
    log=$artifacts/smoke.log
    # A target with an open finding would find it again by mutation sooner or later: until
    # it is fixed (and its input moved into the corpus), only the seeds are replayed. With
    # SECS 0 (the default of `make test`), every target replays its seeds only.
    if [ "$secs" = 0 ] || compgen -G "$here/open/$target/*" >/dev/null; then
        if ! "$0" check "$target" >"$log" 2>&1; then
            tail -n 40 "$log"
            echo "fuzz $target: FAILED (log: $log, inputs: $artifacts/)"
            exit 1
        fi
        seeds=$(grep -m1 -o 'INITED.*corp: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
        echo "fuzz $target: ${seeds:-0} seeds pass (seeds only: SECS 0, or open findings in fuzz/open/$target/)"
        exit 0
    fi
    if ! "$0" check "$target" >"$log" 2>&1 || ! "$0" fuzz "$target" "$secs" >>"$log" 2>&1; then
        tail -n 40 "$log"
        echo "fuzz $target: FAILED (log: $log, inputs: $artifacts/)"
        exit 1
    fi
    seeds=$(grep -m1 -o 'INITED.*corp: [0-9]*' "$log" | grep -o '[0-9]*$' || true)
    runs=$(grep 'stat::number_of_executed_units' "$log" | tail -n 1 | grep -o '[0-9]*$' || true)
    echo "fuzz $target: ${seeds:-0} seeds pass, ${runs:-0} executions in ${secs} s, nothing found"
    exit 0
fi
case $mode in
    check) exec "$bin" "${limits[@]}" -runs=0 "$corpus" ;;
    fuzz) exec "$bin" "${limits[@]}" -max_len="${FUZZ_MAX_LEN:-131072}" -max_total_time="$secs" \
        "$scratch" "$corpus" ;;
    *) echo "usage: fuzz/run.sh check|fuzz|smoke|open TARGET [SECONDS]" >&2; exit 2 ;;
esac
