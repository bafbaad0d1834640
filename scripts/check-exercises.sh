#!/usr/bin/env bash
# check-exercises.sh -- what make check-exercises (and CI) runs: every
# exercise of docs/EXERCISES.md still works as handed out.
#
# Usage: scripts/check-exercises.sh
#
# In a scratch copy of the tree (the files git tracks, and new ones it
# would add; nothing of build/ or bin/ is reused), in order:
#   1. the library, the programs and every checker are built, and every
#      checker FAILS with a message of its own ("exercise N: ..."), not
#      by failing to build or by timing out;
#   2. for each exercise N, in a copy of that built tree (mtimes kept, so
#      only what the solution touches is rebuilt), exercises/solutions/
#      NN.patch applies and the checker PASSES;
#   3. in one more copy, every solution applied at once (they touch
#      distinct extension points, so they apply together): make test
#      passes, and so does every checker.
# A solution that no longer applies, a checker that passes on the tree
# as shipped, or a solution that breaks make test fails the run. The
# scratch tree is removed when everything passed and kept otherwise.
#
# Environment: TMPDIR (where the scratch tree goes), JOBS (make -j, default
# the number of CPUs).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
jobs=${JOBS:-$(nproc)}
make=${MAKE:-make}
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ptth-check-exercises.XXXXXX") || exit 1
# git apply in a scratch tree must not find a repository above it.
export GIT_CEILING_DIRECTORIES=$scratch
failures=()
started=$SECONDS

say()
{
	echo "check-exercises: $*"
}

problem()
{
	failures+=("$*")
	say "FAIL: $*"
}

# The exercise numbers that have a checker, in order.
exercises()
{
	local f
	for f in tests/exercises/ex[0-9][0-9]_*.{c,sh}; do
		[[ -f $f ]] || continue
		f=${f##*/ex}
		echo "$((10#${f%%_*}))"
	done | sort -n -u
}

# Copies the tree as git would commit it into $1.
copy_tree()
{
	mkdir -p "$1"
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		git ls-files -z --cached --others --exclude-standard |
			tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$1"
	else
		tar --exclude=./build --exclude=./bin -cf - . | tar -xf - -C "$1"
	fi
}

# Runs make exercise N=$2 in tree $1, output in $3; returns its status.
run_exercise()
{
	(cd "$1" && "$make" --no-print-directory -j"$jobs" exercise N="$2") >"$3" 2>&1
}

# Applies the solution of exercise $2 in tree $1. Returns 0 or 1.
apply_solution()
{
	local patch
	patch=exercises/solutions/$(printf %02d "$2").patch
	if [[ ! -f $1/$patch ]]; then
		problem "exercise $2 has no reference solution $patch"
		return 1
	fi
	if ! (cd "$1" && git apply --whitespace=nowarn "$patch") 2>"$1.apply.log"; then
		problem "exercise $2: $patch no longer applies to the code (regenerate it):" \
			"$(head -3 "$1.apply.log" | tr '\n' ' ')"
		return 1
	fi
}

list=$(exercises)
pristine=$scratch/pristine
copy_tree "$pristine"
say "scratch tree $scratch; exercises: $(echo $list)"

# 1. Every checker fails on the tree as shipped, with a message of its own.
t=$SECONDS
if ! (cd "$pristine" && "$make" -s --no-print-directory -j"$jobs" all exercise-checkers) \
	>"$scratch/build.log" 2>&1; then
	tail -30 "$scratch/build.log"
	problem "the tree as shipped does not build (see $scratch/build.log)"
fi
for n in $list; do
	log=$scratch/shipped-$n.log
	if run_exercise "$pristine" "$n" "$log"; then
		problem "exercise $n: its checker passes on the tree as shipped"
	elif grep -qE "does not build|timed out" "$log"; then
		problem "exercise $n: on the tree as shipped its checker $(grep -m1 -oE \
			'does not build|timed out' "$log") instead of failing (see $log)"
	elif ! grep -v "not done yet" "$log" | grep -q "exercise $n: "; then
		problem "exercise $n: its checker fails without saying why (see $log)"
	else
		say "exercise $n fails as shipped: $(grep -v 'not done yet' "$log" |
			grep -m1 -o "exercise $n: .*" | cut -c1-100)"
	fi
done
say "1. every checker fails as shipped: $((SECONDS - t)) s"

# 2. Each solution alone makes its checker pass.
t=$SECONDS
for n in $list; do
	tree=$scratch/solution-$n
	cp -a "$pristine" "$tree"
	log=$scratch/solution-$n.log
	if apply_solution "$tree" "$n"; then
		if run_exercise "$tree" "$n" "$log"; then
			say "exercise $n passes with its solution"
			rm -rf "$tree"
		else
			tail -15 "$log"
			problem "exercise $n: its checker fails with the solution applied (see $log)"
		fi
	fi
done
say "2. every checker passes with its solution: $((SECONDS - t)) s"

# 3. Every solution at once: make test, then every checker.
t=$SECONDS
tree=$scratch/all-solutions
cp -a "$pristine" "$tree"
applied=yes
for n in $list; do
	apply_solution "$tree" "$n" || applied=no
done
if [[ $applied == yes ]]; then
	if (cd "$tree" && "$make" --no-print-directory -j"$jobs" all tests &&
		"$make" --no-print-directory test) >"$scratch/all-test.log" 2>&1; then
		say "make test passes with every solution applied"
	else
		grep -E '^(FAIL|PASS)' "$scratch/all-test.log" | grep FAIL
		tail -5 "$scratch/all-test.log"
		problem "make test fails with every solution applied (see $scratch/all-test.log)"
	fi
	for n in $list; do
		run_exercise "$tree" "$n" "$scratch/all-$n.log" ||
			problem "exercise $n: its checker fails with every solution applied" \
				"(see $scratch/all-$n.log)"
	done
fi
say "3. every solution at once, make test and every checker: $((SECONDS - t)) s"

if [[ ${#failures[@]} -gt 0 ]]; then
	say "${#failures[@]} problem(s), in $((SECONDS - started)) s; the scratch tree is kept:" \
		"$scratch"
	printf '  %s\n' "${failures[@]}"
	exit 1
fi
rm -rf "$scratch"
say "all $(echo $list | wc -w) exercises check out, in $((SECONDS - started)) s"
