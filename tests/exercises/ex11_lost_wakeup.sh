#!/usr/bin/env bash
# ex11_lost_wakeup.sh -- the checker of exercise 11 (docs/EXERCISES.md).
#
# Exercise: 11 ★★★ Break it: a lost wake-up
# Checks:   test_exchange, the class's own unit suite for
#           src/common/exchange.c (a file of tests/ the exercise adds):
#           1. is a unit suite (in UNIT_SUITES, so make unit runs it);
#           2. passes against the real exchange.c, within 30 s;
#           3. fails against exchange.c with exercises/breakit/lost-wakeup.patch
#              applied (the condition broadcast of exchange_batch_flush()
#              taken out), within 30 s: by a failed assertion, not by
#              hanging. make unit does catch that break today, but only
#              when test_tunnel times out after 300 s.
# As shipped: there is no such suite.
#
# Environment (make exercise sets it): BUILD (build, build/asan...), MAKE.
set -uo pipefail

build=${BUILD:-build}
make=${MAKE:-make}
cd "$(dirname "$0")/../.." || exit 1

fail()
{
	echo "exercise 11: $*"
	exit 1
}

[[ -f tests/test_exchange.c ]] ||
	fail "tests/test_exchange.c does not exist yet: write a unit suite for" \
		"src/common/exchange.c (docs/EXERCISES.md says where to start)"
sed -n '/^UNIT_SUITES :=/,/[^\\]$/p' Makefile | grep -qw exchange ||
	fail "test_exchange is no unit suite yet: add exchange to UNIT_SUITES in the Makefile"
if ! "$make" -s --no-print-directory "$build/tests/test_exchange" \
	"$build/exercises/breakit/test_exchange"; then
	echo "exercise 11: your suite does not build (see above)"
	exit 90
fi

echo "== your suite against the real exchange.c"
timeout --kill-after=5 30 "$build/tests/test_exchange"
rc=$?
[[ $rc -eq 124 || $rc -eq 137 ]] && fail "your suite hangs against the real exchange.c"
[[ $rc -eq 0 ]] || fail "your suite fails against the real exchange.c: it must pass there"

echo "== your suite against exchange.c without the wake-up ($build/exercises/breakit/)"
timeout --kill-after=5 30 "$build/exercises/breakit/test_exchange"
rc=$?
[[ $rc -eq 124 || $rc -eq 137 ]] &&
	fail "your suite hangs against the broken exchange.c, as test_tunnel does: wait with" \
		"a deadline (exchange_wait_until()) and assert on the result"
[[ $rc -eq 0 ]] &&
	fail "your suite passes against the broken exchange.c: it does not catch the lost" \
		"wake-up (a thread waiting in exchange_wait() while the tunnel thread ends the" \
		"head inside a batch, then flushes the batch)"
echo "exercise 11: your suite passes on exchange.c and catches the lost wake-up"
exit 0
