#!/usr/bin/env bash
# fuzz-smoke.sh -- run each libFuzzer target for a bounded time and fail on
# any crash, hang, leak or sanitizer report.
#
# Usage: scripts/fuzz-smoke.sh SECONDS TARGET...   (make fuzz-smoke runs it)
#
# Each TARGET (build/fuzz/fuzz_NAME) runs for SECONDS with libFuzzer's
# -max_total_time, starting from the project's seeds in fuzz/corpus/fuzz_NAME/
# (fuzz_http1 reads fuzz_user's seeds: both take HTTP/1.1 bytes) and
# keeping what it finds in build/fuzz/corpus/fuzz_NAME/, so the seeds in the
# tree are never rewritten. Dictionaries: fuzz/http1.dict for fuzz_user and
# fuzz_http1, fuzz/h2.dict for fuzz_tunnel and fuzz_backend, else
# fuzz/NAME.dict when it exists. The library's own log lines are dropped
# (-close_fd_mask=2; libFuzzer and the sanitizers still report). A failing
# input is saved as build/fuzz/artifacts/fuzz_NAME-crash-... (or leak-,
# timeout-, oom-); replay it, with the log, by: build/fuzz/fuzz_NAME FILE.
#
# Prints one line per target: PASS or FAIL, executions, executions per
# second, coverage edges and corpus size. Exits 1 when any target failed.
# The full output of each run is in build/fuzz/logs/fuzz_NAME.log.
set -uo pipefail

seconds=${1:?usage: fuzz-smoke.sh SECONDS TARGET...}
shift
cd "$(dirname "$0")/.." || exit 1

# detect_leaks=1 checks after each input that leaked (libFuzzer) and at
# exit (LeakSanitizer); any report ends the run with a non-zero status.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

logdir=build/fuzz/logs
mkdir -p "$logdir" build/fuzz/artifacts
failed=()

# stat NAME LOG: a value from libFuzzer's -print_final_stats lines.
stat()
{
	sed -n "s/^stat::$1: *//p" "$2" | tail -n 1
}

for target in "$@"; do
	name=${target##*/}
	seeds=fuzz/corpus/$name
	[[ $name == fuzz_http1 ]] && seeds=fuzz/corpus/fuzz_user
	case $name in
	fuzz_user | fuzz_http1) dict=fuzz/http1.dict ;;
	fuzz_tunnel | fuzz_backend) dict=fuzz/h2.dict ;;
	*) dict=fuzz/${name#fuzz_}.dict ;;
	esac
	work=build/fuzz/corpus/$name
	log=$logdir/$name.log
	mkdir -p "$work"
	args=(-max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096
	      -error_exitcode=77 -timeout_exitcode=78 -detect_leaks=1
	      -print_final_stats=1 -close_fd_mask=2 -artifact_prefix="build/fuzz/artifacts/$name-")
	[[ -f $dict ]] && args+=(-dict="$dict")
	dirs=("$work")
	[[ -d $seeds ]] && dirs+=("$seeds")

	# The run gets SECONDS plus time to load the corpus and shut down.
	timeout --kill-after=10 $((seconds + 120)) "$target" "${args[@]}" "${dirs[@]}" \
		>"$log" 2>&1
	rc=$?
	runs=$(stat number_of_executed_units "$log")
	per_s=$(stat average_exec_per_sec "$log")
	edges=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
	corpus=$(grep -oE 'corp: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
	# Sanitizer reports that did not stop the run still fail it.
	if [[ $rc -eq 0 ]] && grep -qE '^==[0-9]+==ERROR|runtime error:|^SUMMARY: ' "$log"; then
		rc=1
	fi
	if [[ $rc -eq 0 ]]; then
		printf 'PASS  %-14s %8s runs %6s/s  cov %5s  corpus %5s\n' \
			"$name" "${runs:-?}" "${per_s:-?}" "${edges:-?}" "${corpus:-?}"
		continue
	fi
	grep -vE '^#[0-9]+' "$log" | tail -n 60 | sed "s/^/[$name] /"
	if [[ $rc -eq 124 || $rc -eq 137 ]]; then
		printf 'FAIL  %-14s did not stop within %ds\n' "$name" $((seconds + 120))
	else
		printf 'FAIL  %-14s exit status %d (log: %s)\n' "$name" "$rc" "$log"
	fi
	failed+=("$name")
done

total=$#
if [[ ${#failed[@]} -eq 0 ]]; then
	echo "fuzz-smoke: all $total targets ran ${seconds}s each without a finding."
	exit 0
fi
echo "fuzz-smoke: ${#failed[@]} of $total targets failed: ${failed[*]}"
ls build/fuzz/artifacts/ 2>/dev/null | sed 's|^|fuzz-smoke: saved build/fuzz/artifacts/|'
exit 1
