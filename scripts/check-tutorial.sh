#!/usr/bin/env bash
# check-tutorial.sh -- keep the prose honest: fail when TUTORIAL.md,
# README.md or docs/*.md name something the code no longer has, show code
# or pictures older than their sources, or claim what is not so.
#
# Usage: scripts/check-tutorial.sh       (make test runs it after the suites)
#
# Checks, each problem printed on its own line:
#   1. every function named in backticks, `name()` or `name(args)`, is
#      defined in src/, include/, examples/, tests/ or fuzz/ (a line
#      starting with "name(" at column 0, as the house style puts every
#      definition, or a "#define name("), or is an external function from
#      the allow-lists below (nghttp2, http-parser, libcurl, pthread,
#      cmocka, a few libc);
#   2. every path named in the prose (src/..., tests/..., include/...,
#      examples/..., scripts/..., docs/..., fuzz/...) exists;
#   3. every chapter a module card names ("Tutorial: "Chapter"" in the
#      card at the top of src/*/*.c, examples/*.c, tests/support/*.c and
#      fuzz/*.c) is a heading of TUTORIAL.md with exactly that text;
#   4. TUTORIAL.md shows C code only inside the excerpt blocks that
#      scripts/render-tutorial.py generates from marked regions of the
#      source; anything else refers to code by name;
#   5. those blocks are what the code renders now (render-tutorial.py
#      --check: a changed marked region, a marker no document uses, or
#      a placeholder no marker fills fails, with a diff);
#   6. a function named with a file ("`name()` in `src/x.c`") is
#      defined there, every file a code comment names exists, and every
#      function a picture's source names exists (scripts/check-claims.py);
#   7. every picture in docs/ was drawn from its source as it is now
#      (scripts/render-pictures.sh --check);
#   8. README.md's copies of `bin/router --help`, `bin/backend --help`,
#      `bin/agent --help` and `bin/user --help` are what the programs print. The programs
#      are taken from $PTTH_BIN_DIR (make test sets it), else bin/;
#      when neither is built this check is skipped with a note.
# Exits 0 when everything matches, 1 otherwise.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1

# External functions the prose may name. Prefixes cover whole libraries.
external_prefixes=(nghttp2_ http_parser curl_ pthread_ cmocka_ EVP_ wslay_)
external_names=(
	accept4 poll recv send read write eventfd shutdown close socket bind
	listen connect socketpair setsockopt getaddrinfo sigwait rand_r malloc
	calloc realloc free abort exit usleep nanosleep fprintf printf strerror
	posix_spawn main
)

# The directories whose paths the prose may name, as a regex alternation.
dirs='(src|tests|include|examples|scripts|docs|fuzz)'

problems=()
problem()
{
	problems+=("$1")
}

docs=()
for f in TUTORIAL.md README.md docs/*.md; do
	[[ -f $f ]] && docs+=("$f")
done
if [[ ! -f TUTORIAL.md ]]; then
	problem "TUTORIAL.md: missing"
fi

# --- 1. Functions ------------------------------------------------------

# Every name defined at column 0 (or as a function-like macro) in the code.
declare -A defined=()
while read -r name; do
	defined[$name]=1
done < <(
	find src include examples tests fuzz -type f \( -name '*.c' -o -name '*.h' \) \
		-print0 2>/dev/null |
	xargs -0 -r sed -n -E \
		-e 's/^([A-Za-z_][A-Za-z0-9_]*)\(.*/\1/p' \
		-e 's/^#[[:space:]]*define[[:space:]]+([A-Za-z_][A-Za-z0-9_]*)\(.*/\1/p' |
	sort -u
)

is_external()
{
	local name=$1 p
	for p in "${external_prefixes[@]}"; do
		[[ $name == "$p"* ]] && return 0
	done
	for p in "${external_names[@]}"; do
		[[ $name == "$p" ]] && return 0
	done
	return 1
}

for doc in "${docs[@]}"; do
	# grep -n prints "LINE:`name(" for each backticked call.
	while IFS=: read -r line match; do
		name=${match#\`}
		name=${name%(}
		[[ -n ${defined[$name]:-} ]] && continue
		is_external "$name" && continue
		problem "$doc:$line: \`$name()\` is defined nowhere in the code"
	done < <(grep -noE '`[A-Za-z_][A-Za-z0-9_]*\(' "$doc")
done

# --- 2. Paths ----------------------------------------------------------

for doc in "${docs[@]}"; do
	# A path starts at a word boundary that is not inside another path
	# (so build/tests/... is not read as tests/...).
	while IFS=: read -r line match; do
		path=${match#?}                    # drop the character before it
		[[ $match =~ ^$dirs/ ]] && path=$match
		path=${path%%[.,:;)\`\'\"]}        # trailing punctuation
		path=${path%.}
		[[ $path == *[\*\<\>{}]* ]] && continue   # a pattern, not a file
		[[ $path == */ ]] && path=${path%/}
		[[ -e $path ]] && continue
		problem "$doc:$line: $path does not exist"
	done < <(grep -noE "(^|[^A-Za-z0-9_./-])$dirs/[A-Za-z0-9_./*<>{}-]*[A-Za-z0-9_*>}/]" \
		"$doc")
done

# --- 3. Chapters named by module cards --------------------------------

declare -A headings=()
if [[ -f TUTORIAL.md ]]; then
	while read -r heading; do
		headings[$heading]=1
	done < <(sed -n -E 's/^#{1,6}[[:space:]]+(.*[^[:space:]])[[:space:]]*$/\1/p' \
		TUTORIAL.md)
fi

for src in src/*/*.c examples/*.c tests/support/*.c fuzz/*.c; do
	[[ -f $src ]] || continue
	# The card is the first comment; its Tutorial field may continue on
	# indented lines. Print the field's text joined into one line, so a
	# chapter's name may break across lines. (No {2,}: mawk lacks it.)
	field=$(awk '
		/\*\// { exit }
		/^ \* Tutorial:/ { on = 1; sub(/^ \* Tutorial:/, ""); printf "%s ", $0; next }
		on && /^ \*(   *|\t)/ { sub(/^ \*[ \t]+/, ""); printf "%s ", $0; next }
		on { exit }
	' "$src")
	[[ -z $field ]] && continue
	while read -r chapter; do
		[[ -z $chapter ]] && continue
		[[ -n ${headings[$chapter]:-} ]] && continue
		problem "$src: its card names \"$chapter\", not a heading of TUTORIAL.md"
	done < <(grep -oE '"[^"]+"' <<<"$field" | sed 's/^"//; s/"$//')
done

# --- 4. No pasted C in the tutorial -----------------------------------

if [[ -f TUTORIAL.md ]]; then
	while IFS=: read -r line _; do
		problem "TUTORIAL.md:$line: a C code block outside the <!-- excerpt: --> blocks; mark the region in the source and render it (make docs), or name the function"
	done < <(awk '
		/^<!-- excerpt: .* -->$/ { excerpt = 1 }
		/^<!-- end excerpt -->$/ { excerpt = 0 }
		/^[[:space:]]*```[[:space:]]*(c|C|h|cpp)[[:space:]]*$/ && !excerpt {
			print NR ":"
		}
	' TUTORIAL.md)
fi

# --- 5, 6, 7. Generated excerpts, claims, pictures ---------------------

# run_check NAME COMMAND...: every line the command prints is a problem
# when it fails (render-tutorial.py's diff included, to show what moved).
run_check()
{
	local name=$1 out
	shift
	out=$("$@" 2>&1) && return 0
	while IFS= read -r line; do
		problem "$line"
	done <<<"$out"
	[[ -n $out ]] || problem "$name failed without saying why"
}

run_check render-tutorial python3 scripts/render-tutorial.py --check
run_check check-claims python3 scripts/check-claims.py
run_check render-pictures bash scripts/render-pictures.sh --check

# --- 8. README's copies of --help --------------------------------------

bindir=${PTTH_BIN_DIR:-bin}
if [[ -x $bindir/router && -x $bindir/backend && -x $bindir/agent && -x $bindir/user ]]; then
	for prog in router backend agent user; do
		# The block after the line "`bin/PROG`:" in README.md.
		copy=$(awk -v want="\`bin/$prog\`:" '
			$0 == want { found = 1; next }
			found && !inside && /^```/ { inside = 1; next }
			inside && /^```$/ { exit }
			inside { print }
		' README.md)
		real=$("$bindir/$prog" --help 2>&1)
		[[ $copy == "$real" ]] && continue
		problem "README.md: its copy of bin/$prog --help differs from the program:"
		while IFS= read -r line; do
			problem "  $line"
		done < <(diff <(printf '%s\n' "$copy") <(printf '%s\n' "$real"))
	done
elif [[ -n ${PTTH_BIN_DIR:-} ]]; then
	problem "$bindir: router, backend, agent and user are not all built"
else
	echo "check-tutorial: README's --help copies not compared: run make first"
fi

# --- Report --------------------------------------------------------------

if [[ ${#problems[@]} -gt 0 ]]; then
	printf '%s\n' "${problems[@]}"
	echo "check-tutorial: ${#problems[@]} problem(s) in the prose"
	exit 1
fi
echo "check-tutorial: ${#docs[@]} documents match the code"
exit 0
