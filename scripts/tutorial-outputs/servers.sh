# servers.sh -- sourced by the scripts beside it: starts bin/router and
# bin/backend on ports the kernel picks, so that a script can show what a
# user sees through them. It sets http_port and tunnel_port, and stops
# both servers when the script exits. Every wait is bounded.
#
# The scripts print what the reader would see with the default ports:
# curl's --connect-to sends "localhost:8888" to the real port, so the
# Host field and the output read as in the tutorial.

bindir=${PTTH_BIN_DIR:-bin}
servers_dir=$(mktemp -d "${TMPDIR:-/tmp}/ptth-output.XXXXXX")
router_pid=
backend_pid=

stop_servers()
{
	local pid
	for pid in $backend_pid $router_pid; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	rm -rf "$servers_dir"
}
trap stop_servers EXIT

# await_router PATTERN: reads router lines until one matches; prints it.
# Every line read is also kept in $servers_dir/router.out, in order.
await_router()
{
	local line
	while IFS= read -r -t 20 -u "$router_out" line; do
		printf '%s\n' "$line" >>"$servers_dir/router.out"
		if [[ $line =~ $1 ]]; then
			printf '%s\n' "$line"
			return 0
		fi
	done
	echo "servers.sh: the router never said: $1" >&2
	return 1
}

# start_servers [ROUTER_FLAG...]: router, then backend, then wait for the tunnel.
start_servers()
{
	local line
	exec {router_out}< <(exec "$bindir/router" --http 127.0.0.1:0 \
		--tunnels 127.0.0.1:0 "$@" 2>&1)
	router_pid=$!
	line=$(await_router 'reverse tunnels on tcp://[^ ]*:[0-9]+$') || exit 1
	tunnel_port=${line##*:}
	line=$(await_router 'HTTP traffic on http://[^ ]*:[0-9]+$') || exit 1
	http_port=${line##*:}
	"$bindir/backend" --router "127.0.0.1:$tunnel_port" --quiet \
		>"$servers_dir/backend.log" 2>&1 &
	backend_pid=$!
	await_router 'Tunnel added' >/dev/null || exit 1
}

# user_curl ARG...: curl as the reader would type it, against localhost:8888.
user_curl()
{
	curl --max-time 20 --connect-to "localhost:8888:127.0.0.1:$http_port" "$@"
}
