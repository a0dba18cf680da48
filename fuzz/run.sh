#!/usr/bin/env bash
# Runs one fuzz target (built by `cargo fuzz build`, see the Makefile) under a memory cap and
# a per-input timeout, so a parser that runs away fails the run instead of the machine.
#
#   fuzz/run.sh check TARGET      every checked-in seed of fuzz/corpus/TARGET once
#   fuzz/run.sh fuzz TARGET SECS  coverage-guided fuzzing for SECS seconds from the seeds
#
# New inputs go to fuzz/scratch/TARGET (never into the checked-in corpus); a crash, timeout
# or out-of-memory input is written to fuzz/artifacts/TARGET/ and the run exits non-zero.
# Limits: FUZZ_RSS_MB (default 2048), FUZZ_TIMEOUT seconds per input (default 10),
# FUZZ_MAX_LEN bytes per generated input (default: libFuzzer's, from the corpus).
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
[ -n "${FUZZ_MAX_LEN:-}" ] && limits+=(-max_len="$FUZZ_MAX_LEN")
# Scratch files of the targets that write (archive_import, registry_auth) go to tmpfs.
export GADGET_FUZZ_TMP=${GADGET_FUZZ_TMP:-/dev/shm}
case $mode in
    check) exec "$bin" "${limits[@]}" -runs=0 "$corpus" ;;
    fuzz) exec "$bin" "${limits[@]}" -max_total_time="$secs" "$scratch" "$corpus" ;;
    *) echo "usage: fuzz/run.sh check|fuzz TARGET [SECONDS]" >&2; exit 2 ;;
esac
