#!/usr/bin/env bash
# exercise-probes.sh -- the -D flags an exercise checker's probes earn.
#
# Usage: scripts/exercise-probes.sh "CC CFLAGS" CHECKER_NAME.c
#
# A checker asks whether the code has something an exercise adds (a
# field, a constant) with a comment line of its own:
#     /* probe: HAVE_STREAM_WINDOW: struct ptth_router_options o = { .stream_window = 1 }; (void)o; */
# Each probe's statements are compiled inside a function, after
# #include "ptth.h"; when they compile, -DNAME is printed, so the checker
# can #ifdef on it and fail with a message instead of a compiler error.
# Prints the flags on one line; a probe that does not compile prints
# nothing (that is the point), so this always exits 0.
set -uo pipefail

cc=${1:?usage: exercise-probes.sh "CC CFLAGS" CHECKER.c}
src=${2:?usage: exercise-probes.sh "CC CFLAGS" CHECKER.c}
tmp=$(mktemp -d) || exit 0
trap 'rm -rf "$tmp"' EXIT

flags=()
while IFS= read -r line; do
	name=${line%%:*}
	code=${line#*:}
	printf '#include "ptth.h"\nvoid probe_%s(void);\nvoid probe_%s(void) { %s }\n' \
		"$name" "$name" "$code" >"$tmp/probe.c"
	# shellcheck disable=SC2086  # CC and its flags are words
	if $cc -fsyntax-only "$tmp/probe.c" 2>/dev/null; then
		flags+=("-D$name")
	fi
done < <(sed -n -E 's,^/\* probe: ([A-Z_][A-Z0-9_]*):(.*) \*/$,\1:\2,p' "$src")
echo "${flags[*]:-}"
