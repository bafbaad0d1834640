#!/usr/bin/env bash
# run-tests.sh -- run every test suite in a directory and summarise.
#
# Usage: scripts/run-tests.sh LOGDIR SUITE...
#
# Runs each SUITE binary in name order, each under a 300-second timeout,
# then the documents' checks as suites of their own: check-tutorial
# (scripts/check-tutorial.sh: the prose, excerpts, pictures and --help
# copies match the code), check-docs-selftest (tests/check-docs-selftest.sh:
# those checks catch what they should) and, in the normal build only,
# check-readme-example (scripts/check-readme-example.sh: README's library
# example builds against build/libptth.a and serves). Prints one PASS or
# FAIL line per suite and a summary; exits 1 if any suite failed. make
# test passes the suites built from tests/test_*.c, so a stale binary
# whose source is gone is not run.
#
# Environment (make test sets these):
#   PTTH_BIN_DIR       absolute directory of router, backend and user; passed on
#   PTTH_SAN           "address" or "thread" for sanitizer builds, else empty
#   PTTH_TESTS         space-separated words; run only suites containing one
#   PTTH_TEST_FILTER   a word; each suite runs only the tests whose names
#                      contain it (tests/support/test_filter.c)
#   PTTH_DOCS_CHECK    0 skips the documents' checks after the suites
#                      (make unit)
#   PTTH_TEST_VERBOSE  1 streams suite output; otherwise it is kept in
#                      LOGDIR/NAME.log and printed only on failure
#   PTTH_TEST_TIMEOUT  seconds per suite instead of 300
#   PTTH_TEST_RUNNER   a command put in front of every suite, split on
#                      spaces (make valgrind-test sets "valgrind ..."); the
#                      prose check after the suites runs without it
set -uo pipefail

logdir=${1:?usage: run-tests.sh LOGDIR SUITE...}
shift
timeout_s=${PTTH_TEST_TIMEOUT:-300}
cd "$(dirname "$0")/.." || exit 1

export PTTH_BIN_DIR=${PTTH_BIN_DIR:-$PWD/bin}

# Sanitizer reports should stop the run and say where. Options the caller set
# already come last, so they win.
case ${PTTH_SAN:-} in
address)
	export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
	export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
	;;
thread)
	export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
	;;
esac

# The runner prefix, as words. Suites spawn bin/router and bin/backend
# themselves; a runner such as valgrind follows only the suite process.
read -r -a runner <<<"${PTTH_TEST_RUNNER:-}"

mkdir -p "$logdir"
passed=()
failed=()

# selected NAME: true when PTTH_TESTS is empty or one of its words is in NAME.
selected()
{
	local word
	[[ -z ${PTTH_TESTS:-} ]] && return 0
	for word in $PTTH_TESTS; do
		[[ $1 == *"$word"* ]] && return 0
	done
	return 1
}

# run_suite NAME COMMAND...: run one suite under the timeout and record it.
run_suite()
{
	local name=$1 log=$logdir/$1.log rc start secs
	shift
	start=$SECONDS
	if [[ ${PTTH_TEST_VERBOSE:-} == 1 ]]; then
		timeout --kill-after=10 "$timeout_s" "$@" 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
	else
		timeout --kill-after=10 "$timeout_s" "$@" >"$log" 2>&1
		rc=$?
	fi
	secs=$((SECONDS - start))
	if [[ $rc -eq 0 ]]; then
		printf 'PASS  %-32s %4ds\n' "$name" "$secs"
		passed+=("$name")
		return
	fi
	if [[ ${PTTH_TEST_VERBOSE:-} != 1 ]]; then
		sed "s/^/[$name] /" "$log"
	fi
	if [[ $rc -eq 124 || $rc -eq 137 ]]; then
		printf 'FAIL  %-32s timed out after %ds\n' "$name" "$timeout_s"
	else
		printf 'FAIL  %-32s exit status %d (log: %s)\n' "$name" "$rc" "$log"
	fi
	failed+=("$name")
}

for suite in $(printf '%s\n' "$@" | sort); do
	name=${suite##*/}
	selected "$name" && run_suite "$name" "${runner[@]}" "$suite"
done
# The documents' checks run without the runner: they test no C code.
# make unit skips them all (PTTH_DOCS_CHECK=0): they need the programs.
docs_check=${PTTH_DOCS_CHECK:-1}
if [[ $docs_check != 0 && -f scripts/check-tutorial.sh ]] &&
	selected check-tutorial; then
	run_suite check-tutorial bash scripts/check-tutorial.sh
fi
if [[ $docs_check != 0 && -f tests/check-docs-selftest.sh ]] &&
	selected check-docs-selftest; then
	run_suite check-docs-selftest bash tests/check-docs-selftest.sh
fi
# README's example is built the way README says, against build/libptth.a:
# the normal build's library, which sanitizer and valgrind runs may lack.
if [[ $docs_check != 0 && -z ${PTTH_SAN:-} ]] &&
	[[ -f scripts/check-readme-example.sh ]] && selected check-readme-example; then
	run_suite check-readme-example bash scripts/check-readme-example.sh
fi

total=$(( ${#passed[@]} + ${#failed[@]} ))
if [[ ${#failed[@]} -eq 0 ]]; then
	echo "All $total suites passed${PTTH_SAN:+ (SAN=$PTTH_SAN)}."
	exit 0
fi
echo "${#failed[@]} of $total suites failed${PTTH_SAN:+ (SAN=$PTTH_SAN)}: ${failed[*]}"
exit 1
