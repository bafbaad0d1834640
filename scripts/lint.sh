#!/usr/bin/env bash
# lint.sh -- static analysis of the library: cppcheck, then clang-tidy.
#
# Usage: scripts/lint.sh "COMPILER FLAGS" SOURCE... -- HEADER...
#        (make lint passes the build's flags, src/*.c and the headers)
#
# cppcheck checks the sources and headers with the warning, performance
# and portability checks, suppressions in scripts/cppcheck.supp and inline
# ones ("// cppcheck-suppress id"). clang-tidy checks each source with the
# checks in .clang-tidy (headers under src/ and include/ through
# HeaderFilterRegex), two at a time; scripts/clang-tidy.supp lists the
# findings known to be false, each by file, check and a piece of the
# flagged line, with the reason beside it. Prints every finding left and a
# summary; exits 1 when there is any.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
flags=${1:?usage: lint.sh FLAGS SOURCE... -- HEADER...}
shift
sources=()
headers=()
while [[ $# -gt 0 && $1 != -- ]]; do
	sources+=("$1")
	shift
done
[[ $# -gt 0 ]] && shift
headers=("$@")
read -r -a flag_words <<<"$flags"
status=0

# --- cppcheck ----------------------------------------------------------

# --library=posix knows the POSIX calls; the defines and include paths
# are the build's, so each file is checked in the configuration we build.
# cppcheck takes the preprocessor flags only.
cpp_flags=()
for w in "${flag_words[@]}"; do
	[[ $w == -[DIU]* ]] && cpp_flags+=("$w")
done
echo "lint: cppcheck ${#sources[@]} sources, ${#headers[@]} headers"
if ! cppcheck --enable=warning,performance,portability --std=c11 \
	--library=posix --inline-suppr --error-exitcode=1 --quiet \
	--suppressions-list=scripts/cppcheck.supp \
	--template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
	"${cpp_flags[@]}" "${sources[@]}" "${headers[@]}"; then
	echo "lint: cppcheck found problems (above)"
	status=1
fi

# --- clang-tidy --------------------------------------------------------

# Suppressions: FILE<TAB>CHECK<TAB>TEXT, TEXT being a piece of the flagged
# source line, so that an entry follows its line when code moves and stops
# matching when the line changes.
supp_file=()
supp_check=()
supp_text=()
while IFS=$'\t' read -r file check text; do
	[[ -z $file || $file == \#* ]] && continue
	supp_file+=("$file")
	supp_check+=("$check")
	supp_text+=("$text")
done <scripts/clang-tidy.supp

# suppressed FILE LINE CHECK: true when an entry covers this finding.
suppressed()
{
	local file=$1 line=$2 check=$3 src i
	src=$(sed -n "${line}p" "$file")
	for i in "${!supp_file[@]}"; do
		[[ $file == *"${supp_file[$i]}" && $check == "${supp_check[$i]}" &&
		   $src == *"${supp_text[$i]}"* ]] && return 0
	done
	return 1
}

echo "lint: clang-tidy ${#sources[@]} sources"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
printf '%s\n' "${sources[@]}" |
	xargs -P 2 -I{} clang-tidy --quiet {} -- "${flag_words[@]}" 2>/dev/null >"$out"
findings=0
hidden=0
declare -A seen=()
while IFS= read -r w; do
	[[ $w =~ ^(.+):([0-9]+):([0-9]+):\ (warning|error):\ .*\[([a-z0-9.,-]+)\]$ ]] || continue
	file=${BASH_REMATCH[1]#"$PWD"/}
	line=${BASH_REMATCH[2]}
	check=${BASH_REMATCH[5]}
	# A header's findings come once per source that includes it.
	[[ -n ${seen[$file:$line:$check]:-} ]] && continue
	seen[$file:$line:$check]=1
	if suppressed "$file" "$line" "$check"; then
		hidden=$((hidden + 1))
		continue
	fi
	echo "${w#"$PWD"/}"
	sed -n "${line}p" "$file" | sed 's/^/    /'
	findings=$((findings + 1))
done <"$out"
if [[ $findings -gt 0 ]]; then
	echo "lint: clang-tidy: $findings finding(s) ($hidden known false ones hidden)"
	status=1
else
	echo "lint: clang-tidy: clean ($hidden known false findings hidden)"
fi

[[ $status -eq 0 ]] && echo "lint: clean"
exit $status
