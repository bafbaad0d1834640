#!/usr/bin/env bash
# ex12_planted_bug.sh -- the checker of exercise 12 (docs/EXERCISES.md).
#
# Exercise: 12 ★★ Fuzz: find the planted bug
# Checks:   some seed in fuzz/corpus/fuzz_user/ (the seeds fuzz_user and
#           fuzz_http1 start from) crashes fuzz_http1 built with the bug
#           that exercises/fuzz/planted.patch plants in a copy of
#           src/router/http1.c (build/fuzz/exercise/fuzz_http1_planted),
#           while no seed crashes the real fuzz_http1: the bug was found,
#           and the input that finds it is kept, so it can never come
#           back unseen.
# As shipped: no seed reaches the planted bug.
#
# Environment (make exercise sets it): MAKE. Needs clang (make fuzz-deps).
set -uo pipefail

make=${MAKE:-make}
cd "$(dirname "$0")/../.." || exit 1
fuzz=build/fuzz
seeds=(fuzz/corpus/fuzz_user/*)

fail()
{
	echo "exercise 12: $*"
	exit 1
}

if ! "$make" -s --no-print-directory "$fuzz/fuzz_http1" "$fuzz/exercise/fuzz_http1_planted"; then
	echo "exercise 12: the fuzz targets do not build (see above)"
	exit 90
fi

log=$fuzz/exercise/check.log
mkdir -p "$fuzz/exercise"
if ! "$fuzz/fuzz_http1" "${seeds[@]}" >"$log" 2>&1; then
	tail -20 "$log"
	fail "a seed crashes the real fuzz_http1 (above): that is a bug of the router," \
		"or a broken seed; see $log"
fi
for seed in "${seeds[@]}"; do
	if ! timeout 60 "$fuzz/exercise/fuzz_http1_planted" "$seed" >"$log" 2>&1; then
		grep -m1 -A3 'ERROR: ' "$log"
		echo "exercise 12: the seed $seed finds the planted bug (report: $log)"
		exit 0
	fi
done
fail "no seed in fuzz/corpus/fuzz_user/ finds the bug exercises/fuzz/planted.patch" \
	"plants: run make exercise-fuzz (FUZZ_SECONDS=300 for longer) and copy the input" \
	"it leaves in build/fuzz/exercise/found/ into fuzz/corpus/fuzz_user/"
