# frame-trace.sh -- the frames of one GET /foo on the tunnel, as
# `bin/router --trace` prints them, from the first SETTINGS to the
# backend's GOAWAY when it stops. Times are shown relative to the first
# frame, so the page stays the same from one run to the next.
set -euo pipefail
source scripts/tutorial-outputs/servers.sh
start_servers --quiet --trace
user_curl -s -o /dev/null http://localhost:8888/foo
kill -TERM "$backend_pid"
await_router 'recv GOAWAY' >/dev/null
wait "$backend_pid" 2>/dev/null || true
backend_pid=
echo '$ bin/router --trace      # and, in another terminal, bin/backend, then curl'
# Keep the trace lines (a time first, or an indented header field) and
# turn each time into seconds since the first frame.
awk '
/^[0-9][0-9]:[0-9][0-9]:[0-9][0-9]\.[0-9]+ / {
	split($1, t, ":")
	s = t[1] * 3600 + t[2] * 60 + t[3]
	if (first == "")
		first = s
	$1 = sprintf("+%.3fs", s - first)
	print
	next
}
/^    / { print }
' "$servers_dir/router.out"
