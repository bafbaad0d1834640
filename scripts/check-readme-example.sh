#!/usr/bin/env bash
# check-readme-example.sh -- build and run README.md's library example the
# way README.md says, so that the example and its instructions stay true.
#
# Usage: scripts/check-readme-example.sh     (make test runs it after the
#                                             suites, in the normal build)
#
# It takes the first ```c block after README.md's line
# "<!-- example: NAME -->" (the file name the reader is told to use), and
# the first command after it that starts with "cc " written in backticks
# (README's "Build it in the tree with ..."), and runs that command in a
# scratch directory holding the example under that NAME and links to
# include/ and build/, adding -Wall -Wextra -Werror and -o hello.
# Then it starts $PTTH_BIN_DIR/router (default bin/) on
# ephemeral ports, runs ./hello with the router's tunnel address, waits
# for the router's "Tunnel added" line, asks for /hello?world with curl
# and expects "hello, world". Stopping the router must end the example.
# Every wait is bounded; nothing is left running. Exits 0 or 1.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
root=$PWD
bindir=${PTTH_BIN_DIR:-$root/bin}
wait_s=20

fail()
{
	echo "check-readme-example: $*" >&2
	exit 1
}

[[ -x $bindir/router ]] || fail "$bindir/router is missing; run make"
[[ -f build/libptth.a ]] || fail "build/libptth.a is missing; run make"

# The example, its file name and its build command, as README.md shows them.
name=$(sed -n 's/^<!-- example: \([A-Za-z0-9_-]*\.c\) -->$/\1/p' README.md | head -n 1)
[[ -n $name ]] || fail "README.md has no <!-- example: NAME.c --> line"
source=$(awk -v mark="<!-- example: $name -->" '
	$0 == mark { found = 1; next }
	found && !inside && /^```c$/ { inside = 1; next }
	inside && /^```$/ { exit }
	inside { print }
' README.md)
[[ -n $source ]] || fail "README.md has no \`\`\`c block after <!-- example: $name -->"
build=$(awk -v mark="<!-- example: $name -->" '$0 == mark { found = 1 } found' README.md |
	grep -o '`cc [^`]*`' | head -n 1 | tr -d '`')
[[ -n $build ]] || fail "README.md says nowhere how to build $name (\`cc ...\`)"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/ptth-readme.XXXXXX")
router_pid=
hello_pid=
cleanup()
{
	local pid
	for pid in $hello_pid $router_pid; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	rm -rf "$scratch"
}
trap cleanup EXIT

printf '%s\n' "$source" >"$scratch/$name"
ln -s "$root/include" "$scratch/include"
ln -s "$root/build" "$scratch/build"
echo "\$ $build -Wall -Wextra -Werror -o hello"
(cd "$scratch" && $build -Wall -Wextra -Werror -o hello) || fail "README's example does not build"

# The router, on ports the kernel picks; its output comes through a pipe
# so that each awaited line can be read with a timeout.
exec {router_out}< <(exec "$bindir/router" --http 127.0.0.1:0 --tunnels 127.0.0.1:0 \
	--quiet 2>&1)
router_pid=$!

# await PATTERN: reads router lines until one matches; prints it.
await()
{
	local line
	while IFS= read -r -t "$wait_s" -u "$router_out" line; do
		if [[ $line =~ $1 ]]; then
			printf '%s\n' "$line"
			return 0
		fi
	done
	return 1
}

line=$(await 'reverse tunnels on tcp://[^ ]*:([0-9]+)$') ||
	fail "the router did not say where it listens"
[[ $line =~ :([0-9]+)$ ]] && tunnel_port=${BASH_REMATCH[1]}
line=$(await 'HTTP traffic on http://[^ ]*:([0-9]+)$') ||
	fail "the router did not say where it listens"
[[ $line =~ :([0-9]+)$ ]] && http_port=${BASH_REMATCH[1]}

# The bound is for a broken example that never ends; wait then returns 124.
timeout --kill-after=5 60 "$scratch/hello" "127.0.0.1:$tunnel_port" \
	2>"$scratch/hello.log" &
hello_pid=$!
await 'Tunnel added' >/dev/null || fail "the example never dialled the router"

body=$(curl -sS --max-time "$wait_s" "http://127.0.0.1:$http_port/hello?world") ||
	fail "curl through the router failed"
[[ $body == "hello, world" ]] || fail "expected \"hello, world\", got \"$body\""
echo "curl 'localhost:$http_port/hello?world' -> $body"

# Stopping the router ends the tunnel, and so the example.
kill "$router_pid"
wait "$hello_pid"
status=$?
hello_pid=
[[ $status -eq 124 || $status -eq 137 ]] && fail "the example did not end with its tunnel"
grep -q '^tunnel ended: ' "$scratch/hello.log" ||
	fail "the example ended without saying why: $(cat "$scratch/hello.log")"
echo "check-readme-example: README.md's example builds, serves and ends"
