#!/usr/bin/env bash
# chart.sh -- draws part 1 of bench/run.sh: throughput and p99 latency
# against the number of connections, one curve per system (ptth, the Go
# original, HAProxy, nghttpx).
#
# Usage: bench/chart.sh [SWEEP_DAT [PNG]]
#        (defaults: bench/results/sweep.dat, bench/results/throughput.png)
#
# SWEEP_DAT holds a comment line "# labels: A|B|...|" naming the systems
# in column order, then one line per connection count: "conns rps1 p99_1
# rps2 p99_2 ...", NaN where a system has no figure. Needs gnuplot
# (Debian: gnuplot-nox); `make bench` installs it. Draws with pngcairo
# when the gnuplot build has it, else png.
set -euo pipefail

cd "$(dirname "$0")/.."
data=${1:-bench/results/sweep.dat}
png=${2:-bench/results/throughput.png}

if ! command -v gnuplot >/dev/null 2>&1; then
	echo "chart: gnuplot is missing (Debian package gnuplot-nox)" >&2
	exit 1
fi
if [[ ! -s $data ]]; then
	echo "chart: no data in $data; run bench/run.sh first" >&2
	exit 1
fi
IFS='|' read -r -a labels <<<"$(sed -n 's/^# labels: //p' "$data")"
if ((${#labels[@]} == 0)); then
	echo "chart: $data names no systems (# labels:)" >&2
	exit 1
fi
terminal="pngcairo size 1100,450 font 'sans,10'"
gnuplot -e 'set terminal' 2>/dev/null | grep -q pngcairo || terminal="png size 1100,450"

# plot_cmd OFFSET: one curve per system, its column OFFSET after the
# system's first column (0: req/s, 1: p99).
plot_cmd()
{
	local i cmd="plot" sep=""
	for i in "${!labels[@]}"; do
		cmd+="$sep '$data' using 1:$((2 + 2 * i + $1)) with linespoints lw 2 pt $((7 + i))"
		cmd+=" title '${labels[i]}'"
		sep=","
	done
	echo "$cmd"
}

gnuplot <<GP
set terminal $terminal
set output '$png'
set datafile missing 'NaN'
set multiplot layout 1,2 title "GET /foo (3-byte body), wrk -t2, loopback, $(nproc) CPUs"
set logscale x 10
set xrange [7:300]
set xtics (10, 50, 200)
set xlabel 'connections'
set grid
set key below
set ylabel 'requests/s'
set yrange [0:*]
$(plot_cmd 0)
set ylabel 'p99 latency (ms)'
set logscale y 10
set yrange [*:*]
$(plot_cmd 1)
unset multiplot
GP
echo "chart: wrote $png" >&2
