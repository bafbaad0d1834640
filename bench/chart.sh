#!/usr/bin/env bash
# chart.sh -- draws the connection sweep of bench/run.sh: throughput and
# p99 latency against the number of connections, router and reference.
#
# Usage: bench/chart.sh [SWEEP_DAT [PNG]]
#        (defaults: bench/results/sweep.dat, bench/results/throughput.png)
#
# SWEEP_DAT holds one line per connection count: "conns router_rps
# router_p99_ms ref_rps ref_p99_ms", after comment lines of which one reads
# "# reference: NAME". Needs gnuplot (Debian: gnuplot-nox); `make bench`
# installs it. Draws with pngcairo when the gnuplot build has it, else png.
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
ref=$(sed -n 's/^# reference: //p' "$data")
ref=${ref:-reference}
terminal="pngcairo size 1100,450 font 'sans,10'"
gnuplot -e 'set terminal' 2>/dev/null | grep -q pngcairo || terminal="png size 1100,450"

gnuplot <<EOF
set terminal $terminal
set output '$png'
set datafile missing 'NaN'
set multiplot layout 1,2 title "GET /foo (3-byte body), wrk, loopback, $(nproc) CPUs"
set logscale x 10
set xrange [0.8:250]
set xtics (1, 10, 50, 200)
set xlabel 'connections'
set grid
set key below
set ylabel 'requests/s'
set yrange [0:*]
plot '$data' using 1:2 with linespoints lw 2 pt 7 title 'ptth router', \
     '' using 1:4 with linespoints lw 2 pt 5 title '$ref'
set ylabel 'p99 latency (ms)'
set key below
plot '$data' using 1:3 with linespoints lw 2 pt 7 title 'ptth router', \
     '' using 1:5 with linespoints lw 2 pt 5 title '$ref'
unset multiplot
EOF
echo "chart: wrote $png" >&2
