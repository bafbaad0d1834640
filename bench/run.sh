#!/usr/bin/env bash
# run.sh -- the benchmarks behind `make bench`: the router measured next to
# three other HTTP/1.1-to-HTTP/2 proxies, all on 127.0.0.1.
#
# Usage: bench/run.sh [BINDIR [GOBINDIR]]   (defaults: bin, build/go)
#
# Parts, each bounded in time (`timeout` around every load generator):
#   1. throughput/latency: wrk -t2 at 10, 50 and 200 connections, GET /foo
#      (3-byte body), against four systems started side by side and
#      measured in alternating rounds, the best round of each kept:
#        ptth     bin/router + one bin/backend (--quiet, --delay-ms 0);
#        go       the original Go router re-created in tests/compat
#                 (GOBINDIR/gorouter) + the same bin/backend;
#        haproxy  HAProxy, one thread (nbthread 1), HTTP/1.1 in, HTTP/2
#                 (proto h2, prior knowledge) out -> nghttpd;
#        nghttpx  nghttpx --workers=1 -> nghttpd;
#      nghttpd --no-tls serves a file "foo" holding "bar". The ratios of
#      ptth to each land in one table, the curves in a chart;
#   2. multiplexing: 100 simultaneous GET /sleep?ms=10 (h2load --h1 -c100),
#      cold and warm, and the number of TCP connections to the tunnel port;
#   3. streaming: 1 GiB GET /bytes and 1 GiB POST /echo through the router,
#      MB/s, and the peak RSS (VmHWM) of router and backend;
#   4. scale: wrk with BENCH_SCALE_USERS keep-alive users against 4
#      backends, errors, peak RSS, threads and fds of the router; the same
#      wrk against nghttpx -> nghttpd. The open-file limit is raised to the
#      hard limit first (each user costs wrk one fd and the router one);
#   5. cost per request, for router and backend and for nghttpx and nghttpd:
#      instructions (valgrind --tool=callgrind, a run without requests
#      subtracted), syscalls (strace -c -f, one and ten connections, also
#      less a run without requests) and, where perf's software counters work,
#      context switches and CPU time. These do not move with the machine's
#      load: compare changes with them (`make bench-cost` runs this part).
# Every part starts fresh processes, so peaks belong to that part alone.
#
# Output: Markdown tables on stdout, also written to $out/results.md; the
# part-1 curves to $out/sweep.dat, drawn by bench/chart.sh as
# $out/throughput.png; raw tool output under $out/raw/. Every process
# started here is stopped on exit, whatever the exit path (trap). Ports:
# the routers bind port 0 and print what they got; HAProxy, nghttpx and
# nghttpd get free ports found by binding 127.0.0.1:0.
#
# Environment (defaults in brackets): BENCH_PARTS ["throughput multiplex
# stream scale cost"] the parts to run; BENCH_SYSTEMS ["ptth go haproxy
# nghttpx"] part 1's columns (missing programs are skipped);
# BENCH_CONNS ["10 50 200"]; BENCH_SECONDS [4] per wrk run of part 1;
# BENCH_ROUNDS [2] rounds of part 1; BENCH_SCALE_USERS [10000];
# BENCH_SCALE_SECONDS [10]; BENCH_SCALE_REF [1] also load nghttpx in part
# 4; BENCH_STREAM_BYTES [1073741824]; BENCH_COST_REQUESTS [2000] requests
# under callgrind; BENCH_SYSCALL_REQUESTS [1000] under strace;
# BENCH_PERF_REQUESTS [10000] under perf; BENCH_COST_REF [1] measure
# nghttpx and nghttpd in part 5 too; BENCH_OUT [bench/results];
# BENCH_ROUTER_FLAGS [none] more bin/router flags for every router
# started, to compare a setting (for instance
# BENCH_PARTS=stream BENCH_ROUTER_FLAGS="--queue-size 64" make bench).
set -euo pipefail

cd "$(dirname "$0")/.."
bindir=${1:-bin}
gobindir=${2:-build/go}
parts=${BENCH_PARTS:-throughput multiplex stream scale cost}
systems=${BENCH_SYSTEMS:-ptth go haproxy nghttpx}
read -r -a conns_list <<<"${BENCH_CONNS:-10 50 200}"
seconds=${BENCH_SECONDS:-4}
rounds=${BENCH_ROUNDS:-2}
scale_users=${BENCH_SCALE_USERS:-10000}
scale_seconds=${BENCH_SCALE_SECONDS:-10}
scale_ref=${BENCH_SCALE_REF:-1}
perf_requests=${BENCH_PERF_REQUESTS:-10000}
cost_ref=${BENCH_COST_REF:-1}
stream_bytes=${BENCH_STREAM_BYTES:-1073741824}
cost_requests=${BENCH_COST_REQUESTS:-2000}
syscall_requests=${BENCH_SYSCALL_REQUESTS:-1000}
out=${BENCH_OUT:-bench/results}
raw=$out/raw
cores=$(nproc)

for prog in router backend; do
	if [[ ! -x $bindir/$prog ]]; then
		echo "bench: $bindir/$prog is missing; run make first" >&2
		exit 1
	fi
done
mkdir -p "$raw"
rm -f "$raw"/*
work=$(mktemp -d "${TMPDIR:-/tmp}/ptth-bench.XXXXXX")
bench_started=$(date +%s)

# ---------------------------------------------------------------------
# Processes. Every background process goes into started[]; stop() and
# the exit trap end them by pid: SIGTERM, then SIGKILL after a grace time.

started=()

# alive PID: true while PID runs (a zombie waiting to be reaped does not).
alive()
{
	[[ -r /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# stop PID [GRACE_S]: SIGTERM, up to GRACE_S (default 5) for it and the
# children it had (nghttpx runs a worker process) to end, then SIGKILL.
stop()
{
	local pid=$1 grace=${2:-5} kids p i
	[[ -n $pid ]] || return 0
	if ! alive "$pid"; then
		wait "$pid" 2>/dev/null || true
		return 0
	fi
	kids=$(pgrep -P "$pid" 2>/dev/null || true)
	kill -TERM "$pid" 2>/dev/null || true
	for p in "$pid" $kids; do
		for ((i = 0; i < grace * 20; i++)); do
			alive "$p" || break
			sleep 0.05
		done
		if alive "$p"; then
			echo "bench: pid $p did not stop in ${grace}s; killing it" >&2
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
	wait "$pid" 2>/dev/null || true
}

# stop_launched PID [GRACE_S]: like stop, but when PID is strace or perf
# running a program, that program is stopped first (a signalled strace
# would detach and leave it running); the launcher then ends by itself.
stop_launched()
{
	local pid=$1 grace=${2:-5} kid
	case $(cat "/proc/$pid/comm" 2>/dev/null) in
	strace | perf)
		kid=$(pgrep -P "$pid" | head -1 || true)
		[[ -n $kid ]] && stop "$kid" "$grace"
		;;
	esac
	stop "$pid" "$grace"
}

cleanup()
{
	local i
	for ((i = ${#started[@]} - 1; i >= 0; i--)); do
		stop_launched "${started[i]}" 2
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port: prints a TCP port nobody listens on, found by binding 0.
free_port()
{
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
		return
	fi
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		[[ -z $(ss -Hltn "sport = :$p") ]] && { echo "$p"; return; }
	done
}

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

router_extra=()   # more flags for the next start_router
read -r -a router_flags <<<"${BENCH_ROUTER_FLAGS:-}"   # for every router

# start_router NAME [LAUNCHER...]: starts bin/router (under LAUNCHER, such
# as valgrind, if given) on ports chosen by the kernel. Sets router_pid
# (the launcher's pid), http_port, tunnel_port; its log is $raw/NAME.log.
start_router()
{
	local name=$1
	shift
	router_log=$raw/$name.log
	"$@" "$bindir/router" --quiet --http 127.0.0.1:0 --tunnels 127.0.0.1:0 \
		--drain-timeout-ms 2000 ${router_flags[@]+"${router_flags[@]}"} \
		"${router_extra[@]}" >"$work/$name.out" 2>"$router_log" &
	router_pid=$!
	started+=("$router_pid")
	if ! wait_until 30 grep -qs 'HTTP traffic' "$work/$name.out"; then
		echo "bench: $name did not start:" >&2
		cat "$router_log" >&2
		return 1
	fi
	tunnel_port=$(sed -n 's,.*reverse tunnels on tcp://[^:]*:\([0-9]*\).*,\1,p' "$work/$name.out")
	http_port=$(sed -n 's,.*HTTP traffic on http://[^:]*:\([0-9]*\).*,\1,p' "$work/$name.out")
	base=http://127.0.0.1:$http_port
}

# router_os_pid: the router process itself (strace runs it as a child).
router_os_pid()
{
	local kid
	if [[ $(cat "/proc/$router_pid/comm" 2>/dev/null) == strace ]]; then
		wait_until 5 pgrep -P "$router_pid" >/dev/null || return 1
		kid=$(pgrep -P "$router_pid" | head -1)
		echo "$kid"
	else
		echo "$router_pid"
	fi
}

# tunnels_up: how many tunnels the router log has seen added.
tunnels_up()
{
	grep -cs 'Tunnel added' "$router_log" || true
}

# tunnels_at_least N: true once the router has added N tunnels.
tunnels_at_least()
{
	(($(tunnels_up) >= $1))
}

# listening PORT: true once something listens on 127.0.0.1:PORT.
listening()
{
	[[ -n $(ss -Hltn "sport = :$1") ]]
}

# serves_bar URL: true once URL answers "bar".
serves_bar()
{
	[[ $(curl -s -m 1 "$1") == bar ]]
}

# start_backends N [LAUNCHER...]: N bin/backend processes with one tunnel
# each, --no-reconnect so that they end by themselves once the router
# stops. Waits until the router has all N tunnels. Sets backend_pids.
start_backends()
{
	local n=$1 i want
	shift
	want=$(($(tunnels_up) + n))
	backend_pids=()
	for ((i = 0; i < n; i++)); do
		"$@" "$bindir/backend" --quiet --delay-ms 0 --no-reconnect \
			--router "127.0.0.1:$tunnel_port" 2>>"$raw/backends.log" &
		backend_pids+=("$!")
		started+=("$!")
	done
	if ! wait_until 30 tunnels_at_least "$want"; then
		echo "bench: backends did not connect" >&2
		return 1
	fi
}

# stop_pair: router first; the backends then see their tunnel close and
# end on their own (--no-reconnect).
stop_pair()
{
	local pid
	stop_launched "$router_pid" 10
	for pid in "${backend_pids[@]}"; do
		stop_launched "$pid" 5
	done
	backend_pids=()
}

# status_field PID FIELD: a field of /proc/PID/status (kB, or a count).
status_field()
{
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0
}

# sample_max PID FIELD FILE: every 0.2 s, keeps the largest value of a
# /proc/PID/status field in FILE. Runs in the background until stopped.
sample_max()
{
	local pid=$1 field=$2 file=$3 max=0 v
	while alive "$pid"; do
		v=$(status_field "$pid" "$field")
		[[ -n $v && $v -gt $max ]] && max=$v && echo "$max" >"$file"
		sleep 0.2
	done
}

# ---------------------------------------------------------------------
# Reading tool output.

# wrk_stats FILE: "req/s p50_ms p99_ms errors requests" from wrk --latency
# output; errors are socket errors plus non-2xx/3xx responses.
wrk_stats()
{
	awk '
	function ms(v) {
		if (v ~ /us$/) return v / 1000
		if (v ~ /ms$/) return v + 0
		if (v ~ /m$/) return v * 60000
		if (v ~ /s$/) return v * 1000
		return v + 0
	}
	/^ +50%/ { p50 = ms($2) }
	/^ +99%/ { p99 = ms($2) }
	/requests in/ { reqs = $1 }
	/Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
	/Non-2xx or 3xx responses:/ { err += $NF }
	/^Requests\/sec:/ { rps = $2 }
	END { printf "%.0f %.2f %.2f %d %d\n", rps, p50, p99, err, reqs }' "$1"
}

# h2load_stats FILE: "wall_ms succeeded 2xx" from h2load output.
h2load_stats()
{
	awk '
	/^finished in/ {
		v = $3; sub(",", "", v)
		if (v ~ /ms$/) t = v + 0; else if (v ~ /us$/) t = v / 1000; else t = v * 1000
	}
	/^requests:/ { ok = $8 }
	/^status codes:/ { c2 = $3 }
	END { printf "%.1f %d %d\n", t, ok, c2 }' "$1"
}

# run_wrk FILE CONNS SECONDS URL: wrk with min(2, CONNS) threads.
run_wrk()
{
	local file=$1 conns=$2 secs=$3 url=$4 threads=2
	((conns < 2)) && threads=1
	timeout --kill-after=5 $((secs + 30)) \
		wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 5s --latency "$url" \
		>"$file" 2>&1 || echo "bench: wrk failed, see $file" >&2
}

# strace_calls FILE: "syscall calls" lines from an strace -c table.
strace_calls()
{
	awk '$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { print $NF, $4 }' "$1"
}

# strace_total FILE
strace_total()
{
	awk '$NF == "total" { print $4 }' "$1"
}

# ratio A B [DIGITS]: A / B, or n/a.
ratio()
{
	awk -v a="$1" -v b="$2" -v d="${3:-2}" \
		'BEGIN { if (b + 0 == 0 || a == "") print "n/a"; else printf "%.*f\n", d, a / b }'
}

# ---------------------------------------------------------------------
# Results: rows of the final table, "measure|ptth|reference|target|verdict".

rows=()
row()
{
	rows+=("$1|$2|$3|$4|$5")
}

# verdict VALUE OP LIMIT: ok or MISS (n/a when VALUE is not a number).
verdict()
{
	awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
		if (v !~ /^[0-9.]+$/) { print "n/a"; exit }
		ok = (op == "<=") ? v + 0 <= l + 0 : (op == ">=") ? v + 0 >= l + 0 : v + 0 == l + 0
		print ok ? "ok" : "**MISS**" }'
}

# load average: sampled every 2 s for the whole run.
sample_load()
{
	while :; do
		cut -d' ' -f1 /proc/loadavg >>"$raw/loadavg.txt"
		sleep 2
	done
}

# ---------------------------------------------------------------------
# The reference: nghttpx (HTTP/1.1 in, HTTP/2 out) in front of nghttpd.

have_reference()
{
	command -v nghttpx >/dev/null && command -v nghttpd >/dev/null
}

# start_nghttpd NAME [LAUNCHER...]: nghttpd --no-tls (one worker, its
# default) on a free port, serving a directory whose file foo holds "bar",
# the same 3-byte body as the backend's GET /foo. Sets nd_pid, nd_port.
start_nghttpd()
{
	local name=$1
	shift
	mkdir -p "$work/www"
	printf 'bar' >"$work/www/foo"
	nd_port=$(free_port)
	"$@" nghttpd --no-tls -a 127.0.0.1 -d "$work/www" "$nd_port" >"$raw/$name.log" 2>&1 &
	nd_pid=$!
	started+=("$nd_pid")
	if ! wait_until 20 listening "$nd_port"; then
		echo "bench: nghttpd did not start" >&2
		return 1
	fi
}

# start_nghttpx WORKERS NAME [LAUNCHER...]: nghttpx with WORKERS worker
# threads, plain HTTP/1.1 on a free port, HTTP/2 (prior knowledge) to
# nghttpd; no configuration file and no access log (its default), as the
# router runs --quiet. Sets nx_pid and nx_url.
start_nghttpx()
{
	local n=$1 name=$2 port
	shift 2
	port=$(free_port)
	"$@" nghttpx --conf=/dev/null --workers="$n" -f"127.0.0.1,$port;no-tls" \
		-b"127.0.0.1,$nd_port;;proto=h2" >"$raw/$name.log" 2>&1 &
	nx_pid=$!
	started+=("$nx_pid")
	nx_url=http://127.0.0.1:$port
	if ! wait_until 30 serves_bar "$nx_url/foo"; then
		echo "bench: nghttpx did not start" >&2
		return 1
	fi
}

# nghttpx_worker_pid: nghttpx serves from a worker process it forks.
nghttpx_worker_pid()
{
	pgrep -P "$nx_pid" | head -1 || true
}

# ---------------------------------------------------------------------
# The other proxies of part 1: HAProxy and the Go original.

# start_haproxy NAME: HAProxy with one thread, HTTP/1.1 on a free port,
# HTTP/2 with prior knowledge (proto h2) to nghttpd on nd_port. With
# http-reuse always, every request shares one backend connection, as
# the router's share one tunnel and nghttpx's one connection per worker.
# No log lines, as the router runs --quiet. Sets hx_pid and hx_url.
start_haproxy()
{
	local name=$1 port cfg=$work/$1.cfg
	port=$(free_port)
	cat >"$cfg" <<CFG
global
	nbthread 1
	maxconn 4000
defaults
	mode http
	timeout connect 5s
	timeout client 30s
	timeout server 30s
	http-reuse always
frontend front
	bind 127.0.0.1:$port
	default_backend back
backend back
	server nghttpd 127.0.0.1:$nd_port proto h2
CFG
	haproxy -db -f "$cfg" >"$raw/$name.log" 2>&1 &
	hx_pid=$!
	started+=("$hx_pid")
	hx_url=http://127.0.0.1:$port
	if ! wait_until 30 serves_bar "$hx_url/foo"; then
		echo "bench: haproxy did not start:" >&2
		cat "$raw/$name.log" >&2
		return 1
	fi
}

have_go()
{
	[[ -x $gobindir/gorouter ]]
}

# start_gorouter NAME: the re-created Go router on ports chosen by the
# kernel, and one bin/backend dialled to it. Sets go_pid, go_backend_pid
# and go_url. Part 1 starts a fresh pair for every run: the original
# drops its tunnel when a round trip fails, and a user that leaves with a
# request in flight (every wrk connection at the end of a run) fails one,
# so a second run through the same pair would find no tunnel.
start_gorouter()
{
	local name=$1 out=$work/$1.out tport
	"$gobindir/gorouter" -http 127.0.0.1:0 -tunnels 127.0.0.1:0 >"$out" 2>&1 &
	go_pid=$!
	started+=("$go_pid")
	if ! wait_until 30 grep -qs '^http ' "$out"; then
		echo "bench: gorouter did not start:" >&2
		cat "$out" >&2
		return 1
	fi
	tport=$(sed -n 's/^tunnels .*:\([0-9]*\)$/\1/p' "$out")
	go_url=http://127.0.0.1:$(sed -n 's/^http .*:\([0-9]*\)$/\1/p' "$out")
	"$bindir/backend" --quiet --delay-ms 0 --no-reconnect --router "127.0.0.1:$tport" \
		2>>"$raw/$name-backend.log" &
	go_backend_pid=$!
	started+=("$go_backend_pid")
	if ! wait_until 30 grep -qs 'Tunnel added' "$out"; then
		echo "bench: bin/backend did not reach gorouter" >&2
		return 1
	fi
}

# ---------------------------------------------------------------------
# Part 1: throughput and latency at 10, 50 and 200 connections, four
# systems side by side.

declare -A url_of      # system -> base URL
declare -A best_rps best_p50 best_p99 all_rps errors  # key: "system conns"
measured=()            # the systems part 1 could start, in column order
declare -A label=([ptth]="ptth" [go]="Go original" [haproxy]="HAProxy -n1"
	[nghttpx]="nghttpx -n1")

# measure SYSTEM CONNS ROUND: one wrk run; keeps the round with the
# highest req/s (other jobs on the machine only ever slow a run down),
# lists every round, and counts errors over all of them.
measure()
{
	local key="$1 $2" file=$raw/wrk-$1-c$2-r$3.txt rps p50 p99 err
	if [[ $1 == go ]]; then
		start_gorouter "gorouter-c$2-r$3" || return 0
		url_of[go]=$go_url
	fi
	run_wrk "$file" "$2" "$seconds" "${url_of[$1]}/foo"
	if [[ $1 == go ]]; then
		stop "$go_pid"
		stop "$go_backend_pid"
	fi
	read -r rps p50 p99 err _ <<<"$(wrk_stats "$file")"
	all_rps[$key]="${all_rps[$key]:+${all_rps[$key]}, }$rps"
	errors[$key]=$((${errors[$key]:-0} + err))
	if ((rps > ${best_rps[$key]:-0})); then
		best_rps[$key]=$rps best_p50[$key]=$p50 best_p99[$key]=$p99
	fi
}

# start_systems: every system of BENCH_SYSTEMS whose programs exist; all
# run at once and sit idle while another is measured.
start_systems()
{
	local sys nd=0
	for sys in $systems; do
		case $sys in
		ptth)
			start_router router1 && start_backends 1 || return 1
			url_of[ptth]=$base
			;;
		go)
			have_go || { echo "bench: $gobindir/gorouter missing: no Go column" >&2; continue; }
			;;
		haproxy | nghttpx)
			if ! command -v "$sys" >/dev/null || ! command -v nghttpd >/dev/null; then
				echo "bench: $sys or nghttpd missing: no $sys column" >&2
				continue
			fi
			((nd)) || { start_nghttpd nghttpd || continue; nd=1; }
			if [[ $sys == haproxy ]]; then
				start_haproxy haproxy || continue
				url_of[haproxy]=$hx_url
			else
				start_nghttpx 1 nghttpx-n1 || continue
				url_of[nghttpx]=$nx_url
			fi
			;;
		*)
			echo "bench: unknown system $sys" >&2
			continue
			;;
		esac
		measured+=("$sys")
	done
}

# Rounds alternate, and within a round the order of the systems turns
# by one each time, so that a burst of load from elsewhere on the
# machine hits one round of each rather than all the runs of one.
part_throughput()
{
	local round c i n sys
	start_systems || return 1
	n=${#measured[@]}
	for ((round = 1; round <= rounds; round++)); do
		echo "bench: 1. throughput, round $round of $rounds: wrk ${seconds}s," \
			"${conns_list[*]} connections, ${measured[*]}" >&2
		for c in "${conns_list[@]}"; do
			for ((i = 0; i < n; i++)); do
				sys=${measured[(i + round - 1) % n]}
				measure "$sys" "$c" "$round"
			done
		done
	done
	stop_pair
	for sys in hx_pid nx_pid nd_pid; do
		[[ -n ${!sys:-} ]] && stop "${!sys}"
	done
	return 0
}

# cell SYSTEM CONNS: "req/s (p99 ms)" of the best round.
cell()
{
	local k="$1 $2"
	[[ -n ${best_rps[$k]:-} ]] || { echo "n/a"; return; }
	echo "${best_rps[$k]} (${best_p99[$k]})$( ((${errors[$k]:-0} > 0)) && echo "; ${errors[$k]} errors")"
}

# throughput_table: one row per connection count, the systems' req/s
# and p99 side by side, then ptth's ratio to each.
throughput_table()
{
	local c sys line head sep
	head="| connections |" sep="|---|"
	for sys in "${measured[@]}"; do
		head+=" ${label[$sys]} req/s (p99 ms) |" sep+="---|"
	done
	for sys in "${measured[@]}"; do
		[[ $sys == ptth ]] && continue
		head+=" ptth / ${label[$sys]} |" sep+="---|"
	done
	echo "$head"
	echo "$sep"
	for c in "${conns_list[@]}"; do
		line="| $c |"
		for sys in "${measured[@]}"; do
			line+=" $(cell "$sys" "$c") |"
		done
		for sys in "${measured[@]}"; do
			[[ $sys == ptth ]] && continue
			line+=" $(ratio "${best_rps[ptth $c]:-}" "${best_rps[$sys $c]:-}") |"
		done
		echo "$line"
	done
}

report_throughput()
{
	local r p99 hp99 c err=0 sys line
	[[ -n ${best_rps[ptth 50]:-} ]] || return 0
	r=$(ratio "${best_rps[ptth 50]}" "${best_rps[nghttpx 50]:-}")
	row "1 ratio ptth / nghttpx -n1 at 50 connections (wrk ${seconds}s, best of $rounds rounds)" \
		"$r" "${best_rps[nghttpx 50]:-n/a} req/s" ">= 0.6" "$(verdict "$r" '>=' 0.6)"
	p99=${best_p99[ptth 50]}
	row "1 ptth p50 / p99 (ms) at 50 connections, in its best round" \
		"${best_p50[ptth 50]} / $p99" \
		"${best_p50[nghttpx 50]:-n/a} / ${best_p99[nghttpx 50]:-n/a} (nghttpx -n1)" \
		"p99 <= 3" "$(verdict "$p99" '<=' 3)"
	if [[ -n ${best_rps[ptth 200]:-} ]]; then
		r=$(ratio "${best_rps[ptth 200]}" "${best_rps[haproxy 200]:-}")
		row "1 ratio ptth / HAProxy -n1 at 200 connections" "$r" \
			"${best_rps[haproxy 200]:-n/a} req/s" ">= 1" "$(verdict "$r" '>=' 1)"
		hp99=${best_p99[haproxy 200]:-}
		r=$(ratio "${best_p99[ptth 200]}" "$hp99")
		row "1 ptth p99 / HAProxy's at 200 connections (ms)" \
			"$r (${best_p99[ptth 200]})" "${hp99:-n/a}" "<= 1.5" "$(verdict "$r" '<=' 1.5)"
	fi
	for c in "${conns_list[@]}"; do
		err=$((err + ${errors[ptth $c]:-0}))
	done
	line=""
	for sys in "${measured[@]}"; do
		[[ $sys == ptth ]] && continue
		local e=0
		for c in "${conns_list[@]}"; do
			e=$((e + ${errors[$sys $c]:-0}))
		done
		line+="${line:+, }${label[$sys]} $e"
	done
	row "1 errors in all part-1 runs (socket + non-2xx)" "$err" "$line" "0" \
		"$(verdict "$err" '==' 0)"
}

# ---------------------------------------------------------------------
# Part 2: 100 simultaneous 10 ms requests over one tunnel.

m_cold='' m_warm='' m_ok='' m_conns=''

part_multiplex()
{
	local url f i
	echo "bench: 2. multiplexing: 100 x GET /sleep?ms=10" >&2
	start_router router2 || return 1
	start_backends 1 || return 1
	url="$base/sleep?ms=10"
	# Count the TCP connections to the tunnel port while requests run.
	(
		max=0
		for ((i = 0; i < 40; i++)); do
			n=$(ss -Htn state established "( dport = :$tunnel_port )" | wc -l)
			((n > max)) && max=$n
			echo "$max" >"$work/tunnel-conns"
			sleep 0.01
		done
	) &
	started+=("$!")
	for f in cold warm; do
		timeout --kill-after=5 30 h2load --h1 -n100 -c100 "$url" >"$raw/mux-$f.txt" 2>&1 || true
	done
	wait "${started[-1]}" 2>/dev/null || true
	read -r m_cold _ _ <<<"$(h2load_stats "$raw/mux-cold.txt")"
	read -r m_warm m_ok _ <<<"$(h2load_stats "$raw/mux-warm.txt")"
	m_conns=$(cat "$work/tunnel-conns" 2>/dev/null || echo "?")
	stop_pair
}

report_multiplex()
{
	row "2 multiplexing: 100 x GET /sleep?ms=10 at once, wall time cold / warm (ms)" \
		"$m_cold / $m_warm" "" "near 10, < 100" "$(verdict "$m_warm" '<=' 100)"
	local v='**MISS**'
	[[ $m_conns == 1 && $m_ok == 100 ]] && v=ok
	row "2 TCP connections to the tunnel port during the run; responses OK (warm)" \
		"$m_conns; $m_ok / 100" "" "1; 100" "$v"
}

# ---------------------------------------------------------------------
# Part 3: a large body each way.

s_down='' s_up='' s_router_kb='' s_backend_kb='' s_ok=''

# mbps BYTES SECONDS: 10^6 bytes per second.
mbps()
{
	awk -v b="$1" -v t="$2" 'BEGIN { if (t + 0 > 0) printf "%.0f\n", b / t / 1e6; else print "n/a" }'
}

part_stream()
{
	local down up rpid
	echo "bench: 3. streaming: $stream_bytes bytes down, then up" >&2
	start_router router3 || return 1
	start_backends 1 || return 1
	down=$(timeout --kill-after=5 180 curl -s -o /dev/null -w '%{size_download} %{time_total}' \
		"$base/bytes?n=$stream_bytes" || true)
	echo "$down" >"$raw/stream-down.txt"
	# -T - streams stdin (chunked) instead of loading it like --data-binary;
	# size_upload then counts the chunk framing too.
	up=$(head -c "$stream_bytes" /dev/zero |
		timeout --kill-after=5 180 curl -s -T - -X POST -H 'Content-Type: application/octet-stream' \
			-o /dev/null -w '%{size_upload} %{size_download} %{time_total}' "$base/echo" || true)
	echo "$up" >"$raw/stream-up.txt"
	s_down=$(mbps "$stream_bytes" "$(awk '{ print $2 }' <<<"$down")")
	s_up=$(mbps "$stream_bytes" "$(awk '{ print $3 }' <<<"$up")")
	s_ok=$(awk -v n="$stream_bytes" -v d="$down" -v u="$up" 'BEGIN {
		split(d, a, " "); split(u, b, " ")
		print (a[1] == n && b[1] >= n && b[2] == n) ? "yes" : "no" }')
	rpid=$(router_os_pid)
	s_router_kb=$(status_field "$rpid" VmHWM)
	s_backend_kb=$(status_field "${backend_pids[0]}" VmHWM)
	stop_pair
}

report_stream()
{
	row "3 streaming 1 GiB: GET /bytes, POST /echo (both ways at once) (MB/s); all bytes arrived" \
		"$s_down, $s_up; $s_ok" "" "" "$([[ $s_ok == yes ]] && echo ok || echo '**MISS**')"
	row "3 peak RSS while streaming (VmHWM MB): router, backend" \
		"$(awk -v a="$s_router_kb" -v b="$s_backend_kb" 'BEGIN { printf "%.1f, %.1f", a/1024, b/1024 }')" \
		"" "bounded: < 64 each" \
		"$(verdict "$(( (${s_router_kb:-0} > ${s_backend_kb:-0} ? ${s_router_kb:-0} : ${s_backend_kb:-0}) / 1024 ))" '<=' 64)"
}

# ---------------------------------------------------------------------
# Part 4: many keep-alive users (BENCH_SCALE_USERS), 4 backends.

k_rps='' k_p50='' k_p99='' k_err='' k_errs='' k_kb='' k_vm='' k_threads='' k_fds='' k_busy=''
k_reqs='' k_queue='' k_ref_rps='' k_ref_p99='' k_ref_err='' k_ref_kb='' k_limit=''

# sample_fds PID FILE: every 0.2 s, keeps the largest count of PID's open
# fds in FILE. Runs in the background until PID ends.
sample_fds()
{
	local pid=$1 file=$2 max=0 v
	while alive "$pid"; do
		v=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
		((v > max)) && max=$v && echo "$max" >"$file"
		sleep 0.2
	done
}

# wrk_socket_errors FILE: "connect read write timeout" counts.
wrk_socket_errors()
{
	awk '/Socket errors:/ { gsub(",", ""); s = "connect " $4 ", read " $6 ", write " $8 ", timeout " $10 }
		END { print (s == "" ? "none" : s) }' "$1"
}

# Each user costs wrk one fd and the router one (its socket; a user
# connection opens an eventfd only while a request body and a response
# move at once), so the soft limit goes up to the hard one. Every user
# may have a request waiting at once: the tunnels' queues get room for
# all of them (--queue-size), as --max-conns does for the connections;
# with the default 256 the extra requests are answered 503 at once.
part_scale()
{
	local users=$scale_users
	local wrk_timeout=$((scale_seconds > 5 ? scale_seconds : 5))
	echo "bench: 4. scale: wrk -t2 -c$users ${scale_seconds}s, 4 backends" >&2
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	k_limit=$(ulimit -n)
	if ((k_limit < users + 200)); then
		echo "bench: ulimit -n is $k_limit, too low for $users users" >&2
	fi
	k_queue=${BENCH_SCALE_QUEUE:-$users}
	router_extra=(--max-conns $((users + 2000)) --queue-size "$k_queue")
	start_router router4 || { router_extra=(); return 1; }
	router_extra=()
	start_backends 4 || return 1
	sample_max "$router_pid" Threads "$work/threads" &
	started+=("$!")
	sample_fds "$router_pid" "$work/fds" &
	started+=("$!")
	timeout --kill-after=5 $((scale_seconds + 60)) \
		wrk -t2 -c"$users" -d"${scale_seconds}s" --timeout "${wrk_timeout}s" --latency \
		"$base/foo" >"$raw/wrk-scale.txt" 2>&1 || echo "bench: wrk failed, see $raw/wrk-scale.txt" >&2
	read -r k_rps k_p50 k_p99 k_err k_reqs <<<"$(wrk_stats "$raw/wrk-scale.txt")"
	k_errs=$(wrk_socket_errors "$raw/wrk-scale.txt")
	k_kb=$(status_field "$router_pid" VmHWM)
	k_vm=$(status_field "$router_pid" VmPeak)
	k_threads=$(cat "$work/threads" 2>/dev/null || echo "?")
	k_fds=$(cat "$work/fds" 2>/dev/null || echo "?")
	stop_pair
	k_busy=$(grep -c '503 every tunnel is busy' "$router_log" || true)
	((scale_ref)) && have_reference || return 0
	echo "bench: 4. scale: nghttpx --workers=1, wrk -t2 -c$users ${scale_seconds}s" >&2
	start_nghttpd scale-nghttpd || return 1
	start_nghttpx 1 scale-nghttpx || return 1
	timeout --kill-after=5 $((scale_seconds + 60)) \
		wrk -t2 -c"$users" -d"${scale_seconds}s" --timeout "${wrk_timeout}s" --latency \
		"$nx_url/foo" >"$raw/wrk-scale-nghttpx.txt" 2>&1 || true
	read -r k_ref_rps _ k_ref_p99 k_ref_err _ <<<"$(wrk_stats "$raw/wrk-scale-nghttpx.txt")"
	k_ref_kb=$(status_field "$(nghttpx_worker_pid)" VmHWM)
	stop "$nx_pid"
	stop "$nd_pid"
}

# mb KB: megabytes (MiB) with one decimal, or n/a.
mb()
{
	awk -v a="$1" 'BEGIN { if (a == "" || a == "?") print "n/a"; else printf "%.1f", a / 1024 }'
}

report_scale()
{
	local u=$scale_users
	[[ -n $k_rps ]] || return 0
	row "4 scale: $u keep-alive users, 4 backends, ${scale_seconds}s (--queue-size $k_queue, ulimit -n $k_limit): req/s, p50 / p99 (ms), requests" \
		"$k_rps, $k_p50 / $k_p99, $k_reqs" "${k_ref_rps:-n/a}, p99 ${k_ref_p99:-n/a} (nghttpx -n1, 1 nghttpd)" "" ""
	row "4 errors (socket + non-2xx); socket errors; the router's \"503 every tunnel is busy\"" \
		"$k_err; $k_errs; $k_busy" "${k_ref_err:-n/a} (nghttpx -n1)" "0" "$(verdict "$k_err" '==' 0)"
	row "4 router peak RSS (VmHWM MiB); nghttpx's worker's" "$(mb "$k_kb")" \
		"$(mb "$k_ref_kb") (nghttpx -n1)" "< 256" "$(verdict "$(mb "$k_kb")" '<=' 256)"
	row "4 router peak threads, peak open fds, peak virtual size (VmPeak MiB)" \
		"$k_threads, $k_fds, $(mb "$k_vm")" "" "" ""
}

# ---------------------------------------------------------------------
# Part 5: cost per request, in units that do not depend on the load.

declare -A cost

# load N CONNS URL NAME: N GETs over CONNS keep-alive connections.
load()
{
	timeout --kill-after=5 180 h2load --h1 -n"$1" -c"$2" "$3" >"$raw/$4-h2load.txt" 2>&1 ||
		echo "bench: h2load failed, see $raw/$4-h2load.txt" >&2
}

# start_system KIND NAME PROXY_LAUNCHER BACKEND_LAUNCHER: KIND ptth starts
# router + one backend, KIND ref nghttpd + nghttpx --workers=1; each
# launcher is a command prefix in one word list ("" for none). Sets url.
start_system()
{
	local kind=$1 name=$2
	local -a pl bl
	read -r -a pl <<<"$3"
	read -r -a bl <<<"$4"
	if [[ $kind == ptth ]]; then
		start_router "$name-router" "${pl[@]}" || return 1
		start_backends 1 "${bl[@]}" || return 1
		url=$base/foo
	elif [[ $kind == hx ]]; then
		start_nghttpd "$name-nghttpd" "${bl[@]}" || return 1
		start_haproxy "$name-haproxy" || return 1
		url=$hx_url/foo
	else
		start_nghttpd "$name-nghttpd" "${bl[@]}" || return 1
		start_nghttpx 1 "$name-nghttpx" "${pl[@]}" || return 1
		url=$nx_url/foo
	fi
}

stop_system()
{
	if [[ $1 == ptth ]]; then
		stop_pair
	elif [[ $1 == hx ]]; then
		stop "$hx_pid" 10
		stop_launched "$nd_pid" 10
	else
		stop_launched "$nx_pid" 10
		stop_launched "$nd_pid" 10
	fi
}

# callgrind_ir KIND N: sets cg_total to the proxy's instructions (router,
# or nghttpx's processes together) for N requests; N = 0 measures start,
# connect and stop alone.
callgrind_ir()
{
	local kind=$1 n=$2 prefix=$work/cg-$1-$2
	cg_total=''
	start_system "$kind" "cg-$kind-$n" \
		"valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=$prefix.%p" "" ||
		return 1
	((n > 0)) && load "$n" 10 "$url" "cg-$kind"
	stop_system "$kind"
	cg_total=$(cat "$prefix".* | awk '/^totals:/ { t += $2 } END { print t }')
	if ((n > 0)) && command -v callgrind_annotate >/dev/null; then
		local f
		for f in "$prefix".*; do
			callgrind_annotate --inclusive=no "$f" 2>/dev/null | head -60
		done >"$raw/callgrind-$kind-top.txt"
	fi
}

# strace_run KIND N CONNS: syscall tables of the proxy and the backend for
# N requests over CONNS connections, in $raw/strace-KIND-{proxy,backend}-N-CONNS.txt.
strace_run()
{
	local kind=$1 n=$2 c=$3 tag=$1-$2-$3
	start_system "$kind" "st-$tag" "strace -f -c -o $raw/strace-$kind-proxy-$n-$c.txt" \
		"strace -f -c -o $raw/strace-$kind-backend-$n-$c.txt" || return 1
	((n > 0)) && load "$n" "$c" "$url" "st-$tag"
	stop_system "$kind"
}

# per_request LOADED BASE N: (LOADED - BASE) / N with one decimal.
per_request()
{
	awk -v a="$1" -v b="$2" -v n="$3" \
		'BEGIN { if (a == "" || b == "") print "n/a"; else printf "%.1f\n", (a - b) / n }'
}

# syscall_breakdown LOADED BASE N: per-request calls of each syscall.
syscall_breakdown()
{
	join <(strace_calls "$1" | sort) <(strace_calls "$2" | sort) -a1 -e0 -o auto |
		awk -v n="$3" '{ d = ($2 - $3) / n; if (d >= 0.05) printf "%s %.2f\n", $1, d }' |
		sort -k2 -rn
}

# perf_run KIND N CONNS: context switches and CPU time of proxy and
# backend for N requests over CONNS connections. The outer perf counts
# the proxy, the inner one the backend; the command after -- only sets
# how long. At one connection the counts are nearly exact: each request
# waits for the last, so nothing is batched.
perf_run()
{
	local kind=$1 n=$2 c=$3 ppid bpid tag=$1-c$3
	start_system "$kind" "perf-$tag" "" "" || return 1
	if [[ $kind == ptth ]]; then
		ppid=$router_pid bpid=${backend_pids[0]}
	else
		ppid=$(nghttpx_worker_pid) bpid=$nd_pid
		[[ $kind == hx ]] && ppid=$hx_pid
	fi
	local pt0 bt0 pt1 bt1
	pt0=$(cpu_ticks "$ppid")
	bt0=$(cpu_ticks "$bpid")
	timeout --kill-after=5 120 \
		perf stat -x, -e context-switches,task-clock -p "$ppid" -o "$raw/perf-$tag-proxy.txt" -- \
		perf stat -x, -e context-switches,task-clock -p "$bpid" -o "$raw/perf-$tag-backend.txt" -- \
		h2load --h1 -n"$n" -c"$c" "$url" >"$raw/perf-$tag-h2load.txt" 2>&1 || true
	pt1=$(cpu_ticks "$ppid")
	bt1=$(cpu_ticks "$bpid")
	stop_system "$kind"
	local side t0 t1
	for side in proxy backend; do
		if [[ $side == proxy ]]; then t0=$pt0 t1=$pt1; else t0=$bt0 t1=$bt1; fi
		cost[$kind-$side-perf$c]=$(awk -F, -v n="$n" -v t0="$t0" -v t1="$t1" -v hz="$(getconf CLK_TCK)" '
			$3 == "context-switches" { cs = $1 }
			$3 == "task-clock" { t = $1 }
			END {
				if (cs == "" || t == "") { print "n/a"; exit }
				split(t0, a, " "); split(t1, b, " ")
				printf "%.2f / %.0f (%.0f + %.0f)\n", cs / n, t * 1000 / n,
					(b[1] - a[1]) * 1e6 / hz / n, (b[2] - a[2]) * 1e6 / hz / n
			}' "$raw/perf-$tag-$side.txt")
	done
}

# cpu_ticks PID: "utime stime" of the whole process, in clock ticks.
cpu_ticks()
{
	awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat" 2>/dev/null || echo "0 0"
}

part_cost()
{
	local kind kinds=(ptth) b0 b n=$syscall_requests side c
	((cost_ref)) && have_reference && kinds+=(ref)
	if command -v valgrind >/dev/null; then
		for kind in "${kinds[@]}"; do
			echo "bench: 5. cost: $kind under callgrind, 0 and $cost_requests requests" >&2
			callgrind_ir "$kind" 0 || true
			b0=$cg_total
			callgrind_ir "$kind" "$cost_requests" || true
			cost[$kind-ir]=$(awk -v a="$cg_total" -v b="$b0" -v n="$cost_requests" \
				'BEGIN { if (a == "" || b == "") print "n/a"; else printf "%.0f\n", (a - b) / n }')
			echo "$kind callgrind totals: $b0 (0 requests), $cg_total ($cost_requests requests)" \
				>>"$raw/callgrind.txt"
		done
	fi
	if command -v strace >/dev/null; then
		for kind in "${kinds[@]}"; do
			echo "bench: 5. cost: $kind under strace -f, 0 and $n requests, 1 and 10 connections" >&2
			strace_run "$kind" 0 1 || true
			strace_run "$kind" "$n" 1 || true
			strace_run "$kind" "$n" 10 || true
			for side in proxy backend; do
				b=$raw/strace-$kind-$side-0-1.txt
				for c in 1 10; do
					cost[$kind-$side-sys$c]=$(per_request \
						"$(strace_total "$raw/strace-$kind-$side-$n-$c.txt")" \
						"$(strace_total "$b")" "$n")
					echo "$kind $side, $c connection(s), syscalls per request:"
					syscall_breakdown "$raw/strace-$kind-$side-$n-$c.txt" "$b" "$n" | sed 's/^/  /'
				done
			done >>"$raw/syscalls-per-request.txt"
		done
	fi
	if perf stat -e context-switches true >/dev/null 2>&1; then
		for kind in "${kinds[@]}"; do
			echo "bench: 5. cost: $kind under perf stat, $perf_requests requests, 1 and 10 connections" >&2
			perf_run "$kind" "$perf_requests" 1 || true
			perf_run "$kind" "$perf_requests" 10 || true
		done
		# HAProxy (one thread) too, for what a request costs the proxy
		# that part 1 compares with at 200 connections.
		if ((cost_ref)) && command -v haproxy >/dev/null && have_reference; then
			echo "bench: 5. cost: haproxy under perf stat, $perf_requests requests, 10 connections" >&2
			perf_run hx "$perf_requests" 10 || true
		fi
	fi
}

report_cost()
{
	local -A name=([ptth-proxy]="router" [ptth-backend]="backend"
		[ref-proxy]="nghttpx -n1" [ref-backend]="nghttpd")
	row "5 proxy instructions per request (callgrind, h2load -c10, start-up subtracted)" \
		"${cost[ptth-ir]:-n/a}" "${cost[ref-ir]:-n/a} (nghttpx -n1)" "" ""
	local side c
	for side in proxy backend; do
		row "5 ${name[ptth-$side]} syscalls per request (strace -f), 1 / 10 connections" \
			"${cost[ptth-$side-sys1]:-n/a} / ${cost[ptth-$side-sys10]:-n/a}" \
			"${cost[ref-$side-sys1]:-n/a} / ${cost[ref-$side-sys10]:-n/a} (${name[ref-$side]})" "" ""
	done
	for side in proxy backend; do
		for c in 1 10; do
			[[ -n ${cost[ptth-$side-perf$c]:-} ]] || continue
			row "5 ${name[ptth-$side]} context switches / CPU µs (user + system) per request (perf, $c connection$( ((c > 1)) && echo s))" \
				"${cost[ptth-$side-perf$c]}" "${cost[ref-$side-perf$c]:-n/a} (${name[ref-$side]})" "" ""
		done
		if [[ $side == proxy && -n ${cost[hx-proxy-perf10]:-} ]]; then
			row "5 HAProxy -n1 context switches / CPU µs (user + system) per request (perf, 10 connections); nghttpd behind it" \
				"" "${cost[hx-proxy-perf10]}; ${cost[hx-backend-perf10]:-n/a}" "" ""
		fi
	done
}

# ---------------------------------------------------------------------

# write_sweep: part 1's curves for bench/chart.sh: a "# systems:" line
# naming the columns, then per connection count each system's req/s and
# p99 (NaN where it has none).
write_sweep()
{
	local c sys line
	{
		echo "# systems: ${measured[*]}"
		echo "# labels: $(for sys in "${measured[@]}"; do printf '%s|' "${label[$sys]}"; done)"
		echo "# conns, then req/s and p99 (ms) of each system"
		for c in "${conns_list[@]}"; do
			line=$c
			for sys in "${measured[@]}"; do
				line+=" ${best_rps[$sys $c]:-NaN} ${best_p99[$sys $c]:-NaN}"
			done
			echo "$line"
		done
	} >"$out/sweep.dat"
}

print_table()
{
	local commit dirty load_stats r
	commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	dirty=$(git status --porcelain --untracked-files=no -- . ':!bench/results' 2>/dev/null | wc -l)
	load_stats=$(awk '{ s += $1; n++; if (n == 1 || $1 < lo) lo = $1; if ($1 > hi) hi = $1 }
		END { if (n) printf "min %.2f, mean %.2f, max %.2f", lo, s / n, hi }' "$raw/loadavg.txt")
	echo "### ptth benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "Commit $commit$( ((dirty > 0)) && echo " with $dirty files changed"), $cores CPUs," \
		"$(($(date +%s) - bench_started)) s. Load average (1 min) before the run: $load_before_run;" \
		"during it: $load_stats (the benchmark's own load included)."
	echo
	echo "| measure | ptth | reference | target | verdict |"
	echo "|---|---|---|---|---|"
	for r in "${rows[@]}"; do
		IFS='|' read -r m p ref t v <<<"$r"
		echo "| $m | $p | ${ref:-} | ${t:-} | ${v:-} |"
	done
}

# want PART: true when BENCH_PARTS names PART.
want()
{
	[[ " $parts " == *" $1 "* ]]
}

load_before_run=$(cut -d' ' -f1 /proc/loadavg)
sample_load &
started+=("$!")

want throughput && { part_throughput || echo "bench: part 1 failed" >&2; }
want multiplex && { part_multiplex || echo "bench: part 2 failed" >&2; }
want stream && { part_stream || echo "bench: part 3 failed" >&2; }
want scale && { part_scale || echo "bench: part 4 failed" >&2; }
want cost && { part_cost || echo "bench: part 5 failed" >&2; }

report_throughput
want multiplex && report_multiplex
want stream && report_stream
report_scale
want cost && report_cost
{
	print_table
	if ((${#measured[@]} > 0)); then
		echo
		echo "Part 1, GET /foo, wrk -t2, ${seconds}s per run, best of $rounds alternating rounds:"
		echo
		throughput_table
	fi
} | tee "$out/results.md"
if ((${#measured[@]} > 0)); then
	write_sweep
	if [[ -f bench/chart.sh ]] && command -v gnuplot >/dev/null; then
		bash bench/chart.sh "$out/sweep.dat" "$out/throughput.png" ||
			echo "bench: chart failed" >&2
	fi
fi
echo
echo "Raw output: $raw/; chart: $out/throughput.png; syscalls: $raw/syscalls-per-request.txt"
