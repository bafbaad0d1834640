#!/usr/bin/env bash
# demo.sh -- show a request travel user -> router -> tunnel -> backend and back.
#
# Usage: scripts/demo.sh [BINDIR]     (make demo builds first, then runs this)
#
# Starts bin/router, waits until it listens on its HTTP port (8888) and its
# tunnel port (8887), starts bin/backend, waits until the router logs
# "Tunnel added", runs bin/user in the foreground, then stops both servers
# and prints their logs, each line prefixed with [router] or [backend].
# Exits with the user program's status.
set -euo pipefail

cd "$(dirname "$0")/.."
bindir=${1:-bin}
http_port=8888
tunnel_port=8887
wait_s=5

for prog in router backend user; do
	if [[ ! -x $bindir/$prog ]]; then
		echo "demo: $bindir/$prog is missing; run make first" >&2
		exit 1
	fi
done

logdir=$(mktemp -d "${TMPDIR:-/tmp}/ptth-demo.XXXXXX")
router_pid=
backend_pid=

# stop_all: on any exit, stop both servers, then show what they logged.
stop_all()
{
	local pid
	for pid in $backend_pid $router_pid; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	[[ -f $logdir/router.log ]] && sed 's/^/[router] /' "$logdir/router.log"
	[[ -f $logdir/backend.log ]] && sed 's/^/[backend] /' "$logdir/backend.log"
	rm -rf "$logdir"
}
trap stop_all EXIT

# listening PORT: true once something accepts connections on PORT. ss looks
# without connecting; the fallback connects, which the router sees as a
# client that left at once.
listening()
{
	if command -v ss >/dev/null 2>&1; then
		ss -Hltn "sport = :$1" | grep -q .
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# wait_for WHAT COMMAND...: poll COMMAND every 50 ms for up to $wait_s s.
wait_for()
{
	local what=$1 i
	shift
	for ((i = 0; i < wait_s * 20; i++)); do
		"$@" && return 0
		kill -0 "$router_pid" 2>/dev/null || { echo "demo: router exited" >&2; return 1; }
		sleep 0.05
	done
	echo "demo: gave up after ${wait_s}s waiting for $what" >&2
	return 1
}

for port in $http_port $tunnel_port; do
	if listening "$port"; then
		echo "demo: port $port is already in use" >&2
		exit 1
	fi
done

"$bindir/router" >"$logdir/router.log" 2>&1 &
router_pid=$!
wait_for "router on port $http_port" listening $http_port
if command -v ss >/dev/null 2>&1; then
	wait_for "router on port $tunnel_port" listening $tunnel_port
fi

"$bindir/backend" >"$logdir/backend.log" 2>&1 &
backend_pid=$!
wait_for "the backend's tunnel" grep -q 'Tunnel added' "$logdir/router.log"

echo "demo: router and backend are up; running $bindir/user"
set +e
"$bindir/user" 2>&1 | sed 's/^/[user] /'
status=${PIPESTATUS[0]}
set -e
echo "demo: user exited with status $status"
exit "$status"
