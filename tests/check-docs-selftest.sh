#!/usr/bin/env bash
# check-docs-selftest.sh -- the documents' checks, checked: each must pass
# on the tree as it is, fail on the kind of drift it exists to catch, and
# pass again once the drift is repaired.
#
# Usage: tests/check-docs-selftest.sh     (make test runs it as a suite)
#
# Works on a copy of the tree in a scratch directory, never on the tree
# itself. Each case changes the copy, runs scripts/check-tutorial.sh
# there and expects it to fail with a given message, then restores the
# changed files and expects it to pass. The --help case runs against
# stand-in programs that print README.md's copies, so no build is needed.
# Prints one line per case; exits 1 when a case did not behave.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
scratch=$(mktemp -d "${TMPDIR:-/tmp}/ptth-docs-selftest.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
tree=$scratch/tree
fake_bin=$scratch/bin
failures=0

# The files of the tree (what git would commit), without build output.
mkdir -p "$tree"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		xargs -0 cp --parents -t "$tree" 2>/dev/null
else
	cp -r README.md TUTORIAL.md Makefile docs scripts src include examples \
		tests fuzz bench "$tree"/
fi

# Stand-ins for bin/router, bin/backend, bin/agent and bin/user: each prints the
# copy of its --help that README.md holds now.
mkdir -p "$fake_bin"
for prog in router backend agent user; do
	awk -v want="\`bin/$prog\`:" '
		$0 == want { found = 1; next }
		found && !inside && /^```/ { inside = 1; next }
		inside && /^```$/ { exit }
		inside { print }
	' README.md >"$fake_bin/$prog.help"
	printf '#!/bin/sh\ncat "%s"\n' "$fake_bin/$prog.help" >"$fake_bin/$prog"
	chmod +x "$fake_bin/$prog"
done

# check: runs the checker on the copy; its output goes to $scratch/out.
check()
{
	PTTH_BIN_DIR=$fake_bin bash "$tree/scripts/check-tutorial.sh" >"$scratch/out" 2>&1
}

# expect_pass WHAT: the checker must pass.
expect_pass()
{
	if ! check; then
		echo "FAIL  $1: the check failed on a sound tree:"
		sed 's/^/      /' "$scratch/out"
		failures=$((failures + 1))
		return 1
	fi
}

# case_ NAME MESSAGE FILE... -- CHANGE: saves FILEs, runs the shell
# command CHANGE in the copy, expects a failure whose output contains
# MESSAGE, restores FILEs and expects a pass.
case_()
{
	local name=$1 message=$2 files=() f
	shift 2
	while [[ $1 != -- ]]; do
		files+=("$1")
		shift
	done
	shift
	for f in "${files[@]}"; do
		cp "$tree/$f" "$scratch/saved.${f//\//_}"
	done
	(cd "$tree" && eval "$1")
	if check; then
		echo "FAIL  $name: the check passed"
		failures=$((failures + 1))
	elif ! grep -qF -- "$message" "$scratch/out"; then
		echo "FAIL  $name: the check failed, but without \"$message\":"
		sed 's/^/      /' "$scratch/out"
		failures=$((failures + 1))
	else
		echo "ok    $name"
	fi
	for f in "${files[@]}"; do
		cp "$scratch/saved.${f//\//_}" "$tree/$f"
	done
	expect_pass "$name, restored" || true
}

# A line of the copy inside the first region marked accept-loop.
region_file=$(grep -rl --include='*.c' '/\* tutorial: accept-loop \*/' "$tree/src")
region_file=${region_file#"$tree"/}
# Where two functions are defined, wherever src/ puts them.
tunnel_file=$(cd "$tree" && grep -rl --include='*.c' '^tunnel_thread_main(' src)
pool_file=$(cd "$tree" && grep -rl --include='*.c' '^pool_pick(' src)

expect_pass "the tree as it is" && echo "ok    the tree as it is passes"

case_ "a line changed inside a marked region" \
	"differs from what the code renders" "$region_file" -- \
	"sed -i '/tutorial: accept-loop/,/tutorial: end/ s/continue;/continue; \/* changed *\//' $region_file"

# Re-rendering (what make docs does) repairs it.
cp "$tree/$region_file" "$scratch/region.c"
cp "$tree/TUTORIAL.md" "$scratch/TUTORIAL.md"
sed -i '/tutorial: accept-loop/,/tutorial: end/ s/continue;/continue; \/* changed *\//' \
	"$tree/$region_file"
python3 "$tree/scripts/render-tutorial.py" >/dev/null
if expect_pass "re-rendered after a change"; then
	if grep -qF 'continue; /* changed */' "$tree/TUTORIAL.md"; then
		echo "ok    re-rendering takes the change into TUTORIAL.md"
	else
		echo "FAIL  re-rendering did not take the change into TUTORIAL.md"
		failures=$((failures + 1))
	fi
fi
cp "$scratch/region.c" "$tree/$region_file"
cp "$scratch/TUTORIAL.md" "$tree/TUTORIAL.md"

# A change outside the marked regions needs no new rendering.
cp "$tree/$region_file" "$scratch/region.c"
sed -i '1s/$/ /' "$tree/$region_file"
expect_pass "a change outside the marked regions" &&
	echo "ok    a change outside the marked regions passes"
cp "$scratch/region.c" "$tree/$region_file"

case_ "a region without its end" "has no tutorial: end" "$region_file" -- \
	"sed -i '/tutorial: accept-loop/,/tutorial: end/{/tutorial: end/d}' $region_file"

case_ "a marker no document uses" "is used by no" "$region_file" -- \
	"printf '/* tutorial: orphan */\nstatic int orphan;\n/* tutorial: end */\n' >> $region_file"

case_ "a placeholder no marker fills" "is marked nowhere" TUTORIAL.md -- \
	"printf '\n<!-- excerpt: no-such-region -->\n<!-- end excerpt -->\n' >> TUTORIAL.md"

case_ "a placeholder without its end" "has no <!-- end excerpt -->" TUTORIAL.md -- \
	"printf '\n<!-- excerpt: accept-loop -->\n' >> TUTORIAL.md"

case_ "a C block pasted outside the excerpts" "a C code block outside" TUTORIAL.md -- \
	"printf '\n\`\`\`c\nint x;\n\`\`\`\n' >> TUTORIAL.md"

case_ "a generated output edited by hand" "was edited by hand" TUTORIAL.md -- \
	"sed -i 's/recv GOAWAY/recv PING/' TUTORIAL.md"

# Command output: a block whose script never ran fails; rendering with
# --outputs (make docs) fills it; changing the script afterwards fails.
mkdir -p "$tree/scripts/tutorial-outputs"
printf 'echo "$ selftest"\necho one\n' >"$tree/scripts/tutorial-outputs/selftest.sh"
cp "$tree/TUTORIAL.md" "$scratch/TUTORIAL.md"
printf '\n<!-- output: selftest -->\n<!-- end output -->\n' >>"$tree/TUTORIAL.md"
if check; then
	echo "FAIL  an output never generated: the check passed"
	failures=$((failures + 1))
elif grep -qF "output selftest was never generated" "$scratch/out"; then
	echo "ok    an output never generated"
else
	echo "FAIL  an output never generated: failed for another reason:"
	sed 's/^/      /' "$scratch/out"
	failures=$((failures + 1))
fi
python3 "$tree/scripts/render-tutorial.py" --outputs >/dev/null
if expect_pass "an output generated"; then
	if grep -qx one "$tree/TUTORIAL.md"; then
		echo "ok    an output generated by its script passes"
	else
		echo "FAIL  the output block does not hold the script's output"
		failures=$((failures + 1))
	fi
fi
case_ "an output older than its script" "is older than scripts/tutorial-outputs/selftest.sh" \
	scripts/tutorial-outputs/selftest.sh -- \
	"echo 'echo two' >> scripts/tutorial-outputs/selftest.sh"
rm -r "$tree/scripts/tutorial-outputs/selftest.sh"
cp "$scratch/TUTORIAL.md" "$tree/TUTORIAL.md"

case_ "a function said to be in the wrong file" "is not defined in $tunnel_file" \
	TUTORIAL.md -- \
	"printf '\nThe loop is \`user_conn_serve()\` in\n\`$tunnel_file\`.\n' >> TUTORIAL.md"

case_ "a function that does not exist" "is defined nowhere in the code" TUTORIAL.md -- \
	"printf '\nSee \`no_such_function()\`.\n' >> TUTORIAL.md"

case_ "a comment naming a file outside the tree" "which is not in the tree" \
	"$region_file" -- \
	"printf '/* As NOTES-ELSEWHERE.md says. */\n' >> $region_file"

case_ "a module card naming a chapter that is not there, across a line break" \
	'its card names "Spreading the load over the tunnels"' "$pool_file" -- \
	"sed -i 's/over tunnels\"/over the tunnels\"/' $pool_file"

case_ "a picture naming a function the code does not have" \
	"inbox_popped is defined nowhere" docs/threads.dot -- \
	"sed -i 's/inbox_pop()/inbox_popped()/' docs/threads.dot"

case_ "a picture older than its source" "older than docs/threads.dot" \
	docs/threads.dot -- \
	"echo '// a change' >> docs/threads.dot"

case_ "a README --help copy that differs from the program" \
	"its copy of bin/router --help differs" README.md -- \
	"sed -i 's/  --help                   this text/  --help                   help/' README.md"

if [[ $failures -gt 0 ]]; then
	echo "check-docs-selftest: $failures case(s) did not behave"
	exit 1
fi
echo "check-docs-selftest: every check catches what it should"
