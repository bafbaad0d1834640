#!/usr/bin/env bash
# coverage-report.sh -- sum up the line and branch coverage of src/ that a
# test run on the gcov build left behind.
#
# Usage: scripts/coverage-report.sh BUILD_DIR MIN_LINE_PERCENT
#        (make coverage runs the suites on build/coverage first)
#
# Prints gcovr's per-file table for src/ (lines, then branches), writes an
# HTML report to BUILD_DIR/html/index.html, and ends with two lines:
#   coverage: lines: P% (N of M)
#   coverage: branches: P% (N of M)
# Below MIN_LINE_PERCENT of lines it prints a WARNING line; it does not
# fail for that (the threshold is advisory for now). Exits 1 only when
# gcovr is missing or finds no coverage data.
set -uo pipefail

build=${1:?usage: coverage-report.sh BUILD_DIR MIN_LINE_PERCENT}
min=${2:?usage: coverage-report.sh BUILD_DIR MIN_LINE_PERCENT}
cd "$(dirname "$0")/.." || exit 1

if ! command -v gcovr >/dev/null 2>&1; then
	echo "coverage: gcovr is missing (make coverage installs it)" >&2
	exit 1
fi
if [[ -z $(find "$build" -name '*.gcda' -print -quit 2>/dev/null) ]]; then
	echo "coverage: no .gcda files under $build: did the suites run?" >&2
	exit 1
fi

# Only the library's own sources count; branches the compiler adds and
# that no source line can take (exception paths, unreachable ones) do not.
common=(--root . --object-directory "$build" --filter 'src/'
	--exclude-unreachable-branches --exclude-throw-branches)

mkdir -p "$build/html"
gcovr "${common[@]}" --output "$build/coverage-lines.txt" || exit 1
gcovr "${common[@]}" --branches --output "$build/coverage-branches.txt" || exit 1
gcovr "${common[@]}" --html-details "$build/html/index.html" \
	--print-summary >"$build/coverage-summary.txt" || exit 1

cat "$build/coverage-lines.txt"
cat "$build/coverage-branches.txt"
echo "coverage: HTML report in $build/html/index.html"
sed -n 's/^\(lines\|branches\): /coverage: \1: /p' "$build/coverage-summary.txt"

lines=$(sed -n 's/^lines: \([0-9.]*\)%.*/\1/p' "$build/coverage-summary.txt")
if [[ -z $lines ]]; then
	echo "coverage: gcovr printed no line summary" >&2
	exit 1
fi
if awk -v p="$lines" -v m="$min" 'BEGIN { exit !(p < m) }'; then
	echo "WARNING: line coverage of src/ is ${lines}%, below the ${min}% target"
fi
exit 0
