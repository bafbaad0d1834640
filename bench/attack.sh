#!/usr/bin/env bash
# attack.sh -- `make attack`: how much of the service the router keeps
# while hostile users try to take it down. See docs/HARDENING.md.
#
# Usage: bench/attack.sh BINDIR ATTACK  (make attack: bin build/bench/attack)
#
# Three phases, each against a fresh bin/router and ATTACK_BACKENDS
# bin/backend processes (2 tunnels each), all on 127.0.0.1 with ports
# chosen by the kernel:
#   1. never-read:  ATTACK_NEVER_READ (300) users GET /bytes?n=1000000000
#                   and never read;
#   2. slow-upload: ATTACK_SLOW_UPLOAD (300) users POST /echo with a
#                   1 GB Content-Length, one body byte every 3 s;
#   3. slowloris:   ATTACK_SLOWLORIS (2000) users send a request head
#                   that never ends, one byte a second.
# Beside each, a trickle of ATTACK_RATE (20) GET /foo a second, each on a
# new connection, for ATTACK_SECONDS (20). build/bench/attack (bench/attack.c)
# plays all the users and reports, per phase: the share of the trickle
# answered 200 within 1 s, and the router's peak RSS and thread count
# (/proc/PID/status, every 100 ms). Target: 99% within 1 s, RSS and
# threads bounded. A phase takes about ATTACK_SECONDS + 10 s; every
# process started here is stopped on exit, whatever the path (trap).
#
# Output: a Markdown table on stdout, also in $ATTACK_OUT/results.md
# (default build/attack), the programs' logs beside it.
#
# Environment: ATTACK_ROUTER_FLAGS replaces the router flags below
# (a space-separated list); ATTACK_PHASES names the phases to run (all
# three, in the order above); the other ATTACK_* variables as above.
set -euo pipefail

cd "$(dirname "$0")/.."
bindir=${1:-bin}
attack=${2:-build/bench/attack}
seconds=${ATTACK_SECONDS:-20}
rate=${ATTACK_RATE:-20}
backends=${ATTACK_BACKENDS:-2}
out=${ATTACK_OUT:-build/attack}

# The router as a deployment under attack would run it:
#   --max-conns 4096         room for the 2000 slowloris users and the rest
#                            (with the default 1024 they take every slot and
#                            the trickle gets 503s); size it to what the host
#                            can give, about 128 KiB and a thread a connection;
#   --header-timeout-ms 5000 a head normally comes in one packet: a slowloris
#                            user is answered 408 and closed after 5 s (2 s
#                            frees its slot sooner, but every 408 is a new
#                            connection and thread: more churn, no gain
#                            while the attackers fit under --max-conns);
#   --idle-timeout-ms 5000   idle keep-alive connections go sooner;
#   --drain-timeout-ms 1000  so that stopping between phases is quick;
#   --quiet                  no line per request.
router_flags=(--quiet --max-conns 4096 --header-timeout-ms 5000 --idle-timeout-ms 5000
	--drain-timeout-ms 1000)
# Timeouts that only newer routers have, passed when `router --help` lists
# them: a user who reads nothing for 5 s is cut (--send-timeout-ms), and
# an upload with no byte for 2 s gets a 408 (--body-timeout-ms).
optional_flags=("--send-timeout-ms 5000" "--body-timeout-ms 2000")
if [[ -n ${ATTACK_ROUTER_FLAGS:-} ]]; then
	read -r -a router_flags <<<"$ATTACK_ROUTER_FLAGS"
	optional_flags=()
fi

for prog in "$bindir/router" "$bindir/backend" "$attack"; do
	if [[ ! -x $prog ]]; then
		echo "attack: $prog is missing; run make attack" >&2
		exit 1
	fi
done
help=$("$bindir/router" --help)
for pair in "${optional_flags[@]}"; do
	flag=${pair%% *}
	if grep -q -- "$flag " <<<"$help"; then
		read -r -a words <<<"$pair"
		router_flags+=("${words[@]}")
	else
		echo "attack: this router has no $flag; measuring without it" >&2
	fi
done
# 2000 attackers are 2000 sockets in the router and in the attack program.
ulimit -n "$(ulimit -Hn)"
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/ptth-attack.XXXXXX")

# ---------------------------------------------------------------------
# Processes: every one started goes into started[]; the exit trap stops
# them by pid (SIGTERM, then SIGKILL after a grace time).

started=()

alive()
{
	[[ -r /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# stop PID: SIGTERM, up to 5 s, then SIGKILL.
stop()
{
	local pid=$1 i
	if alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			alive "$pid" || break
			sleep 0.05
		done
		if alive "$pid"; then
			echo "attack: pid $pid did not stop in 5 s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || true
}

stop_all()
{
	local i
	for ((i = ${#started[@]} - 1; i >= 0; i--)); do
		stop "${started[i]}"
	done
	started=()
}

cleanup()
{
	stop_all
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_until SECONDS COMMAND...: polls COMMAND every 50 ms.
wait_until()
{
	local limit=$1 i
	shift
	for ((i = 0; i < limit * 20; i++)); do
		"$@" && return 0
		sleep 0.05
	done
	return 1
}

tunnels_at_least()
{
	(($(grep -cs 'Tunnel added' "$router_log" || true) >= $1))
}

# start_servers NAME: a router and its backends, ready to serve. Sets
# router_pid, http_port and router_log.
start_servers()
{
	local name=$1 tunnel_port i
	router_log=$out/$name-router.log
	"$bindir/router" --http 127.0.0.1:0 --tunnels 127.0.0.1:0 "${router_flags[@]}" \
		>"$work/$name.out" 2>"$router_log" &
	router_pid=$!
	started+=("$router_pid")
	if ! wait_until 10 grep -qs 'HTTP traffic' "$work/$name.out"; then
		echo "attack: the router did not start:" >&2
		cat "$router_log" >&2
		return 1
	fi
	tunnel_port=$(sed -n 's,.*reverse tunnels on tcp://[^ ]*:\([0-9]*\)$,\1,p' "$work/$name.out")
	http_port=$(sed -n 's,.*HTTP traffic on http://[^ ]*:\([0-9]*\)$,\1,p' "$work/$name.out")
	for ((i = 1; i <= backends; i++)); do
		"$bindir/backend" --router "127.0.0.1:$tunnel_port" --tunnels 2 --delay-ms 0 \
			--quiet 2>"$out/$name-backend-$i.log" &
		started+=("$!")
	done
	if ! wait_until 10 tunnels_at_least $((2 * backends)); then
		echo "attack: the backends did not connect" >&2
		return 1
	fi
}

# phase NAME MODE CONNS BYTE_MS [--header]: one attack against fresh
# servers; its table row goes to $work/rows.
phase()
{
	local name=$1 mode=$2 conns=$3 byte_ms=$4
	shift 4
	echo "attack: $name: $conns attackers for ${seconds} s of trickle" >&2
	start_servers "$name"
	"$attack" --port "$http_port" --pid "$router_pid" --mode "$mode" --conns "$conns" \
		--seconds "$seconds" --rate "$rate" --byte-ms "$byte_ms" "$@" >>"$work/rows"
	if ! alive "$router_pid"; then
		echo "| $name: the router died; see $router_log |" >>"$work/rows"
	fi
	stop_all
}

began=$(date +%s)
load=$(cut -d' ' -f1-3 /proc/loadavg)
header=--header
for name in ${ATTACK_PHASES:-never-read slow-upload slowloris}; do
	case $name in
	never-read) phase "$name" never-read "${ATTACK_NEVER_READ:-300}" 1000 $header ;;
	slow-upload) phase "$name" slow-upload "${ATTACK_SLOW_UPLOAD:-300}" 3000 $header ;;
	slowloris) phase "$name" slowloris "${ATTACK_SLOWLORIS:-2000}" 1000 $header ;;
	*) echo "attack: no phase called $name" >&2; exit 2 ;;
	esac
	header=
done
{
	echo "Router flags: \`${router_flags[*]}\`; $backends backends with 2 tunnels each;"
	echo "trickle: $rate GET /foo a second for $seconds s per phase; $(nproc) cores,"
	echo "load average $load at the start; $(($(date +%s) - began)) s in all."
	echo
	cat "$work/rows"
} | tee "$out/results.md"
