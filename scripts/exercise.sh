#!/usr/bin/env bash
# exercise.sh -- list the exercises of docs/EXERCISES.md with their state,
# or check one of them.
#
# Usage: scripts/exercise.sh BUILD [N]     (make exercise [N=N] runs it)
#
# Without N, runs every checker quietly and prints one line each:
# number, stars, title, and "done" or "not done". With N, builds and runs
# exercise N's checker with its output shown, then says "done" (exit 0)
# or "not done" (exit 1).
#
# A checker is tests/exercises/exNN_NAME.c, built by make as
# BUILD/exercises/exNN_NAME, or tests/exercises/exNN_NAME.sh, run with
# BUILD and MAKE in its environment, which exits 90 when what it needs
# does not build. Its card has a line "Exercise: N STARS TITLE".
#
# Environment: MAKE (the make that called us), PTTH_BIN_DIR for the
# checkers that run bin/ programs, EXERCISE_TIMEOUT (seconds per checker,
# default 300).
set -uo pipefail

build=${1:?usage: exercise.sh BUILD [N]}
only=${2:-}
cd "$(dirname "$0")/.." || exit 1
make=${MAKE:-make}
timeout_s=${EXERCISE_TIMEOUT:-300}
export PTTH_BIN_DIR=${PTTH_BIN_DIR:-$PWD/bin}

# The checker of exercise $1, or nothing.
checker_of()
{
	local f
	for f in tests/exercises/ex"$(printf %02d "$((10#$1))")"_*.{c,sh}; do
		[[ -f $f ]] && { echo "$f"; return; }
	done
}

# The "N STARS TITLE" line of checker $1.
title_of()
{
	sed -n -E 's/^[ #*]*Exercise: *//p' "$1" | head -1
}

# Builds (for a C checker) and runs checker $1; returns its status, or
# 90 when it could not be built.
run_checker()
{
	local f=$1 name
	name=$(basename "${f%.*}")
	case $f in
	*.c)
		"$make" -s --no-print-directory "$build/exercises/$name" || return 90
		timeout --kill-after=10 "$timeout_s" "$build/exercises/$name"
		;;
	*.sh)
		BUILD=$build MAKE=$make timeout --kill-after=10 "$timeout_s" bash "$f"
		;;
	esac
}

if [[ -n $only ]]; then
	if ! [[ $only =~ ^[0-9]+$ ]] || [[ -z $(checker_of "$only") ]]; then
		echo "exercise: there is no exercise $only (make exercise lists them)" >&2
		exit 2
	fi
	f=$(checker_of "$only")
	echo "exercise $(title_of "$f")"
	echo "checker: $f"
	run_checker "$f"
	rc=$?
	if [[ $rc -eq 0 ]]; then
		echo "exercise $only: done"
		exit 0
	fi
	[[ $rc -eq 90 ]] && echo "exercise $only: the checker does not build (see above)"
	[[ $rc -eq 124 || $rc -eq 137 ]] && echo "exercise $only: the checker timed out"
	echo "exercise $only: not done yet: see the message above, and docs/EXERCISES.md"
	exit 1
fi

logdir=$build/exercises/logs
mkdir -p "$logdir"
echo "Exercises (docs/EXERCISES.md); make exercise N=k checks one with its output."
for f in tests/exercises/ex[0-9][0-9]_*.c tests/exercises/ex[0-9][0-9]_*.sh; do
	[[ -f $f ]] || continue
	printf '%s\n' "$f"
done | sort | while read -r f; do
	log=$logdir/$(basename "${f%.*}").log
	run_checker "$f" >"$log" 2>&1
	case $? in
	0) state=done ;;
	90) state="not done (its checker does not build: $log)" ;;
	*) state="not done" ;;
	esac
	read -r num stars title <<<"$(title_of "$f")"
	n=$(grep -o '★' <<<"$stars" | wc -l)
	printf '  %2s  %s%*s  %-32s %s\n' "$num" "$stars" $((3 - n)) '' "$title" "$state"
done
