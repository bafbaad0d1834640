# Makefile -- builds libptth, the example programs and the test suites.
#
#   make                 library (build/libptth.a, build/libptth.so) and bin/*
#   make test            also builds build/tests/test_* and runs every suite
#   make unit            only the unit suites: no network peer, no Go, seconds
#   make asan-test       the same under AddressSanitizer + UBSan (build/asan/)
#   make tsan-test       the same under ThreadSanitizer (build/tsan/)
#   make valgrind-test   the normal build's suites under valgrind memcheck
#   make fuzz            the libFuzzer targets fuzz/fuzz_*.c (build/fuzz/)
#   make fuzz-smoke      each fuzz target for FUZZ_SECONDS (60) seconds
#   make fuzz-seeds      re-record the seed corpora in fuzz/corpus/
#   make coverage        line and branch coverage of src/ (build/coverage/)
#   make lint            cppcheck and clang-tidy over src/ and include/
#   make bench           benchmarks next to HAProxy, nghttpx and the Go original
#                        (bench/results/, BENCH_* variables: see bench/run.sh)
#   make bench-cost      only the cost per request (instructions, syscalls,
#                        context switches), which the machine's load does not move
#   make attack          availability under three attacks (docs/HARDENING.md)
#   make exercise        the exercises of docs/EXERCISES.md, done or not;
#                        N=3 checks exercise 3
#   make check-exercises every checker fails as shipped, passes solved
#   make demo            router, backend and user talking on localhost
#   make docs            TUTORIAL.md's excerpts and outputs, docs/*.svg
#   make install         PREFIX=/usr/local, DESTDIR honoured
#   make clean           back to the tree as cloned
#
# Variables: CFLAGS (default -O2 -g), WERROR=1 (warnings are errors),
# SAN=address|thread (sanitizer build in its own directory), COVERAGE=1
# (gcov build in build/coverage/), TESTS="queue tunnel" (run only the
# suites whose names contain one of the words), FILTER=WORD (run only the
# tests whose names contain WORD, in every suite run), V=1 (stream test
# output instead of printing it only for failing suites), FUZZ_SECONDS=N.

VERSION := 0.1.0

CC ?= cc
AR ?= ar
PKG_CONFIG ?= pkg-config
CFLAGS ?= -O2 -g

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

# Debian packages the build and the test run need. scripts/need-packages.sh
# installs whichever are missing and is silent otherwise.
BUILD_PACKAGES := build-essential pkg-config libnghttp2-dev \
	libhttp-parser-dev libcurl4-openssl-dev libssl-dev libwslay-dev
UNIT_PACKAGES := libcmocka-dev
TEST_PACKAGES := curl nghttp2-client nghttp2-server socat python3-h2 \
	golang-go golang-golang-x-net-dev python3-websockets python3-hypercorn \
	python3 nginx nodejs python3-prometheus-client haproxy
# make docs also draws the pictures: graphviz (dot) and mscgen.
DOCS_PACKAGES := python3 graphviz mscgen

# Output directories. A sanitizer or coverage build keeps everything,
# including its programs, apart from the normal build, so all can coexist.
SAN ?=
COVERAGE ?=
ifeq ($(COVERAGE),1)
ifneq ($(SAN),)
$(error COVERAGE=1 and SAN=$(SAN) do not mix)
endif
BUILD := build/coverage
BIN := $(BUILD)/bin
SAN_FLAGS := --coverage
else ifeq ($(SAN),)
BUILD := build
BIN := bin
SAN_FLAGS :=
else ifeq ($(SAN),address)
BUILD := build/asan
BIN := $(BUILD)/bin
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
else ifeq ($(SAN),thread)
BUILD := build/tsan
BIN := $(BUILD)/bin
SAN_FLAGS := -fsanitize=thread
else
$(error SAN must be empty, "address" or "thread", not "$(SAN)")
endif
OBJ := $(BUILD)/obj
PIC := $(BUILD)/pic

# Dependencies. libhttp-parser-dev ships no .pc file. The fallbacks apply
# only when pkg-config itself is not installed yet (a fresh machine, before
# need-packages.sh has run); on Debian they equal what pkg-config reports.
pc_cflags = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
pc_libs = $(or $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null),$(2))
DEP_CFLAGS := $(call pc_cflags,libnghttp2 libcurl libcrypto)
NGHTTP2_LIBS := $(call pc_libs,libnghttp2,-lnghttp2)
# libcrypto (OpenSSL) gives the SHA-1 and base64 of Sec-WebSocket-Accept.
CRYPTO_LIBS := $(call pc_libs,libcrypto,-lcrypto)
CURL_LIBS := $(call pc_libs,libcurl,-lcurl)
CMOCKA_CFLAGS := $(call pc_cflags,cmocka)
CMOCKA_LIBS := $(call pc_libs,cmocka,-lcmocka)
HTTP_PARSER_LIBS := -lhttp_parser

WARN_FLAGS := -Wall -Wextra
ifeq ($(WERROR),1)
WARN_FLAGS += -Werror
endif

# Which private headers a file may include. src/ is split by the side of the
# tunnel the code runs on: src/router/ and src/backend/ see their own
# headers and src/common/'s, src/common/ sees only its own, so an include
# across the line fails to compile. Tests, fuzz targets and examples see all.
SIDE_INC := -Isrc/common -Isrc/router -Isrc/backend
$(OBJ)/src/router/%.o $(PIC)/src/router/%.o: SIDE_INC := -Isrc/common
$(OBJ)/src/backend/%.o $(PIC)/src/backend/%.o: SIDE_INC := -Isrc/common
$(OBJ)/src/common/%.o $(PIC)/src/common/%.o: SIDE_INC := -Isrc/common
build/fuzz/obj/src/router/%.o build/fuzz/obj/src/backend/%.o: SIDE_INC := -Isrc/common
build/fuzz/obj/src/common/%.o: SIDE_INC := -Isrc/common
ifneq ($(wildcard src/*.c src/*.h),)
$(error $(wildcard src/*.c src/*.h): a source file belongs in src/router/, src/backend/ or src/common/)
endif

ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN_FLAGS) -pthread -Iinclude $(SIDE_INC) \
	$(DEP_CFLAGS) $(SAN_FLAGS) $(CFLAGS) $(CPPFLAGS) -MMD -MP
ALL_LDFLAGS = -pthread $(SAN_FLAGS) $(LDFLAGS)
LIBS = $(NGHTTP2_LIBS) $(HTTP_PARSER_LIBS) $(CRYPTO_LIBS) $(CURL_LIBS) $(LDLIBS)
# Libraries one example needs and the library does not: bin/backend
# speaks WebSocket on /ws with wslay (the library itself only moves
# bytes). libwslay-dev ships no .pc file.
EXAMPLE_LIBS_backend := -lwslay

# Sources, found by globbing: every src/SIDE/*.c is part of the library,
# every examples/NAME.c becomes bin/NAME (linked with examples/NAME/*.c
# when that folder exists), every tests/test_NAME.c becomes the suite
# build/tests/test_NAME linked with the helpers in tests/support/ and with
# examples/backend/routes.c, the backend's teaching routes, so that the
# routes bin/backend serves and the ones the suites test exist once.
LIB_SIDES := router backend common
LIB_SRCS := $(sort $(wildcard $(LIB_SIDES:%=src/%/*.c)))
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
EXAMPLE_PART_SRCS := $(sort $(wildcard examples/*/*.c))
TEST_SRCS := $(sort $(wildcard tests/test_*.c))
SUPPORT_SRCS := $(sort $(wildcard tests/support/*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(OBJ)/%.o)
PIC_OBJS := $(LIB_SRCS:%.c=$(PIC)/%.o)
ROUTES_OBJ := $(OBJ)/examples/backend/routes.o
EXAMPLE_OBJS := $(EXAMPLE_SRCS:%.c=$(OBJ)/%.o)
EXAMPLE_PART_OBJS := $(EXAMPLE_PART_SRCS:%.c=$(OBJ)/%.o)
TEST_OBJS := $(TEST_SRCS:%.c=$(OBJ)/%.o)
SUPPORT_OBJS := $(SUPPORT_SRCS:%.c=$(OBJ)/%.o) $(ROUTES_OBJ)

STATIC_LIB := $(BUILD)/libptth.a
# The shared library is for installing; sanitizer and coverage builds
# skip it.
ifeq ($(SAN)$(COVERAGE),)
SHARED_LIB := $(BUILD)/libptth.so
endif
EXAMPLES := $(EXAMPLE_SRCS:examples/%.c=$(BIN)/%)
TESTS_BIN := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
# The unit suites need no socket peer, no program from bin/ and no Go:
# `make unit` runs them alone. A new unit suite is added here.
UNIT_SUITES := queue body_pipe headers http1 inbox pool tunnel handshake tokens \
	user_conn websocket_upgrade
UNIT_BIN := $(UNIT_SUITES:%=$(BUILD)/tests/test_%)

# A test that mocks system calls names them in its source, on a line of its
# own:  /* wrap: send recv */  -- each becomes -Wl,--wrap=NAME at link time.
comma := ,
wrap_flags = $(addprefix -Wl$(comma)--wrap=,\
	$(shell sed -n 's,^/\* wrap: \(.*\) \*/,\1,p' $(1)))

.PHONY: all lib examples tests test unit unit-deps asan-test tsan-test valgrind-test demo \
	docs docs-deps \
	install uninstall clean build-deps test-deps valgrind-deps FORCE \
	fuzz fuzz-smoke fuzz-seeds fuzz-deps coverage coverage-deps lint lint-deps \
	bench bench-cost bench-deps attack exercise exercise-checkers exercise-fuzz \
	check-exercises

all: lib examples

lib: $(STATIC_LIB) $(SHARED_LIB)

examples: $(EXAMPLES)

tests: $(TESTS_BIN)

# Installing missing packages. These are phony and always run, but they are
# order-only prerequisites of the objects, so they never force a rebuild,
# and each runs at most once per make invocation.
build-deps:
	@bash scripts/need-packages.sh $(BUILD_PACKAGES)

unit-deps: | build-deps
	@bash scripts/need-packages.sh $(UNIT_PACKAGES)

test-deps: | unit-deps
	@bash scripts/need-packages.sh $(TEST_PACKAGES)

# Compiling. The directory tree under $(OBJ) and $(PIC) mirrors the source
# tree, so src/x.c and examples/x.c cannot collide.
$(OBJ)/src/%.o: src/%.c | build-deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(PIC)/src/%.o: src/%.c | build-deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -c $< -o $@

$(OBJ)/examples/%.o: examples/%.c | build-deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(OBJ)/tests/%.o: tests/%.c | build-deps unit-deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests -Iexamples $(CMOCKA_CFLAGS) -c $< -o $@

# Linking. The archive is rebuilt from scratch so that objects of deleted
# sources do not linger in it.
$(STATIC_LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(SHARED_LIB): $(PIC_OBJS)
	@mkdir -p $(@D)
	$(CC) -shared $(ALL_LDFLAGS) -o $@ $^ $(NGHTTP2_LIBS) \
		$(HTTP_PARSER_LIBS) $(CRYPTO_LIBS) $(LDLIBS)

# A program's own parts, examples/NAME/*.c, are found by a second expansion
# of the prerequisites (the pattern's % is replaced before it, hence the
# function).
example_parts = $(filter $(OBJ)/examples/$(1)/%,$(EXAMPLE_PART_OBJS))
.SECONDEXPANSION:
$(BIN)/%: $(OBJ)/examples/%.o $$(call example_parts,$$*) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $(filter %.o,$^) $(STATIC_LIB) $(EXAMPLE_LIBS_$*) $(LIBS)

$(BUILD)/tests/%: $(OBJ)/tests/%.o $(SUPPORT_OBJS) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $(call wrap_flags,tests/$*.c) -o $@ \
		$< $(SUPPORT_OBJS) $(STATIC_LIB) $(CMOCKA_LIBS) $(LIBS)

# Running. Suites find the example programs through PTTH_BIN_DIR.
# The Go original, re-created in tests/compat as a peer for test_compat.
# Plain Go binaries (no sanitizer), so every flavour shares build/go; go
# build leaves an up-to-date binary untouched, so touch them for make.
GO_BIN := build/go
GO_PEERS := $(GO_BIN)/gorouter $(GO_BIN)/gobackend
GO_PEER_SRCS := $(shell find tests/compat -name '*.go') tests/compat/build.sh

$(GO_PEERS) &: $(GO_PEER_SRCS) | test-deps
	bash tests/compat/build.sh $(GO_BIN)
	@touch $(GO_PEERS)

# Running. Suites find the example programs through PTTH_BIN_DIR and the
# Go peers through PTTH_GO_BIN_DIR.
test: $(STATIC_LIB) $(EXAMPLES) $(TESTS_BIN) $(GO_PEERS) | test-deps
	@PTTH_BIN_DIR='$(abspath $(BIN))' PTTH_GO_BIN_DIR='$(abspath $(GO_BIN))' \
		PTTH_SAN='$(SAN)' \
		PTTH_TESTS='$(TESTS)' PTTH_TEST_FILTER='$(FILTER)' \
		PTTH_TEST_VERBOSE='$(V)' \
		bash scripts/run-tests.sh $(BUILD)/tests/logs $(TESTS_BIN)

# The unit suites alone, without the prose checks (which run the programs).
unit: $(UNIT_BIN) | unit-deps
	@PTTH_SAN='$(SAN)' PTTH_TESTS='$(TESTS)' PTTH_TEST_FILTER='$(FILTER)' \
		PTTH_TEST_VERBOSE='$(V)' PTTH_DOCS_CHECK=0 \
		bash scripts/run-tests.sh $(BUILD)/tests/logs $(UNIT_BIN)

asan-test:
	$(MAKE) SAN=address test

tsan-test:
	$(MAKE) SAN=thread test

# Memcheck on the normal build: any error, or memory definitely or
# indirectly lost, fails the suite. It follows the suite process only;
# the bin/ programs some suites spawn run natively. Valgrind runs threads
# one at a time and many times slower, hence the longer timeout and
# PTTH_SAN=valgrind, which tells the suites to scale their work down;
# some suites run hundreds of threads at once, past memcheck's default
# limit of 500. VALGRIND_SKIP names suites memcheck cannot run:
# test_peers and test_compat wait for their child processes with
# pidfd_open(), a system call valgrind 3.19 (Debian 12) does not know.
VALGRIND ?= valgrind
VALGRIND_FLAGS ?= --tool=memcheck --leak-check=full \
	--errors-for-leak-kinds=definite,indirect --error-exitcode=1 \
	--child-silent-after-fork=yes --fair-sched=yes --max-threads=4096 \
	--num-callers=30 --suppressions=$(abspath scripts/valgrind.supp)
VALGRIND_TIMEOUT ?= 1200
VALGRIND_SKIP ?= test_peers test_compat
VALGRIND_TESTS := $(filter-out $(VALGRIND_SKIP:%=$(BUILD)/tests/%),$(TESTS_BIN))

valgrind-deps:
	@bash scripts/need-packages.sh valgrind

valgrind-test: $(STATIC_LIB) $(EXAMPLES) $(TESTS_BIN) $(GO_PEERS) | test-deps valgrind-deps
	$(if $(SAN),$(error valgrind-test runs the normal build; leave SAN empty))
	@PTTH_BIN_DIR='$(abspath $(BIN))' PTTH_GO_BIN_DIR='$(abspath $(GO_BIN))' \
		PTTH_SAN=valgrind \
		PTTH_TESTS='$(TESTS)' PTTH_TEST_FILTER='$(FILTER)' \
		PTTH_TEST_VERBOSE='$(V)' \
		PTTH_TEST_TIMEOUT='$(VALGRIND_TIMEOUT)' \
		PTTH_TEST_RUNNER='$(VALGRIND) $(VALGRIND_FLAGS)' \
		bash scripts/run-tests.sh $(BUILD)/tests/valgrind-logs \
		$(VALGRIND_TESTS)

demo: all
	@bash scripts/demo.sh $(BIN)

# The generated parts of the documents: TUTORIAL.md's code excerpts (from
# the /* tutorial: NAME */ regions of the source) and command outputs (from
# scripts/tutorial-outputs/, which run the programs), and the pictures
# docs/*.svg from docs/*.dot and docs/*.msc. make test fails when an
# excerpt or a picture is out of date, or an output's script changed since
# it last ran (scripts/check-tutorial.sh).
docs-deps: | build-deps
	@bash scripts/need-packages.sh $(DOCS_PACKAGES)

docs: $(EXAMPLES) | docs-deps
	@PTTH_BIN_DIR='$(abspath $(BIN))' python3 scripts/render-tutorial.py --outputs
	@bash scripts/render-pictures.sh

# Benchmarks next to HAProxy, nghttpx (each -> nghttpd) and the Go
# original; the tables and chart land in bench/results/, see
# docs/PERFORMANCE.md. The normal build only: a sanitizer build would
# measure the sanitizer. bench-cost runs part 5 alone, for before/after
# comparisons on a busy machine.
BENCH_PACKAGES := wrk nghttp2-client nghttp2-proxy nghttp2-server haproxy gnuplot-nox \
	valgrind strace curl iproute2 linux-perf

bench-deps: | build-deps
	@bash scripts/need-packages.sh $(BENCH_PACKAGES)

bench: all $(GO_PEERS) | bench-deps
	@test -z '$(SAN)' || { echo 'bench: run it without SAN=' >&2; exit 1; }
	@bash bench/run.sh $(BIN) $(GO_BIN)

bench-cost: all | bench-deps
	@test -z '$(SAN)' || { echo 'bench-cost: run it without SAN=' >&2; exit 1; }
	@BENCH_PARTS=cost bash bench/run.sh $(BIN) $(GO_BIN)

# Availability under attack: bench/attack.sh runs fresh routers, with the
# flags it names, against never-reading users, slow uploaders and
# slowloris, each beside a trickle of ordinary requests; build/bench/attack
# (bench/attack.c) plays every user. Results in build/attack/results.md,
# see docs/HARDENING.md. About a minute and a half; the normal build
# only, as for bench.
$(BUILD)/bench/attack: bench/attack.c | build-deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -o $@ $<

attack: all $(BUILD)/bench/attack
	@test -z '$(SAN)' || { echo 'attack: run it without SAN=' >&2; exit 1; }
	@bash bench/attack.sh $(BIN) $(BUILD)/bench/attack

# Fuzzing. Every fuzz/fuzz_NAME.c is a libFuzzer target, build/fuzz/fuzz_NAME,
# linked with the other fuzz/*.c helpers (not record_seeds.c, a program of
# its own) and with the library compiled by clang with the same
# sanitizers, in build/fuzz/obj/. Seeds made by the project are in
# fuzz/corpus/TARGET/; what a run adds goes to build/fuzz/corpus/TARGET/.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_OPT ?= -O1
FUZZ_PACKAGES := clang libclang-rt-14-dev
FUZZ_DIR := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN_FLAGS) -pthread -Iinclude $(SIDE_INC) \
	-Ifuzz $(DEP_CFLAGS) -g $(FUZZ_OPT) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP
FUZZ_TARGET_SRCS := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_HELPER_SRCS := $(filter-out $(FUZZ_TARGET_SRCS) fuzz/record_seeds.c,\
	$(sort $(wildcard fuzz/*.c)))
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_HELPER_OBJS := $(FUZZ_HELPER_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_TARGETS := $(FUZZ_TARGET_SRCS:fuzz/%.c=$(FUZZ_DIR)/%)

fuzz: $(FUZZ_TARGETS)

fuzz-deps: | build-deps
	@bash scripts/need-packages.sh $(FUZZ_PACKAGES)

$(FUZZ_DIR)/obj/%.o: %.c | build-deps fuzz-deps
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/fuzz/fuzz_%.o $(FUZZ_HELPER_OBJS) $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) -pthread $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ \
		$(NGHTTP2_LIBS) $(HTTP_PARSER_LIBS) $(CRYPTO_LIBS)

fuzz-smoke: $(FUZZ_TARGETS)
	@bash scripts/fuzz-smoke.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# The recorder runs a real router and backend through a recording relay;
# see fuzz/record_seeds.c. Its output is committed.
$(BUILD)/record_seeds: $(OBJ)/fuzz/record_seeds.o $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(STATIC_LIB) $(LIBS)

$(OBJ)/fuzz/%.o: fuzz/%.c | build-deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

fuzz-seeds: $(BUILD)/record_seeds
	rm -f fuzz/corpus/fuzz_tunnel/rec-* fuzz/corpus/fuzz_backend/rec-*
	$(BUILD)/record_seeds fuzz/corpus

# Exercises (docs/EXERCISES.md). Each tests/exercises/exNN_NAME.c is the
# checker of exercise NN, built as build/exercises/exNN_NAME with the test
# support; a tests/exercises/exNN_NAME.sh checker is a script. Checkers are
# not suites of make test: on the tree as shipped they fail, on purpose.
# "probe:" lines in a checker are compiled first (scripts/exercise-probes.sh)
# and become -D flags, so that a checker asking for a field an exercise
# adds compiles anyway and fails with a message instead.
#   make exercise          lists the exercises, each done or not done
#   make exercise N=3      builds and runs exercise 3's checker, verbosely
#   make exercise-fuzz     runs exercise 12's fuzz target with the planted bug
#   make check-exercises   what CI runs: in a scratch copy of the tree (no
#                          build/ reused), every checker fails on the tree
#                          as shipped and passes with its reference solution
#                          exercises/solutions/NN.patch applied; then, with
#                          every solution applied at once (they touch
#                          distinct extension points, so they apply
#                          together), make test passes and so does every
#                          checker. A solution that no longer applies, or a
#                          checker that passes on the shipped tree, fails it.
EXERCISE_SRCS := $(sort $(wildcard tests/exercises/ex[0-9][0-9]_*.c))
EXERCISE_BINS := $(EXERCISE_SRCS:tests/exercises/%.c=$(BUILD)/exercises/%)
EXERCISE_HDRS := $(wildcard include/*.h src/*/*.h examples/*.h examples/*/*.h tests/support/*.h \
	tests/exercises/*.h)
PROBE_CFLAGS = -std=c11 -D_GNU_SOURCE -Iinclude $(SIDE_INC) $(DEP_CFLAGS)

$(BUILD)/exercises/ex%: tests/exercises/ex%.c $(EXERCISE_HDRS) $(SUPPORT_OBJS) \
		$(STATIC_LIB) | unit-deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests -Iexamples $(CMOCKA_CFLAGS) \
		$$(bash scripts/exercise-probes.sh '$(CC) $(PROBE_CFLAGS)' $<) \
		$(call wrap_flags,$<) -o $@ $< $(SUPPORT_OBJS) $(STATIC_LIB) \
		$(CMOCKA_LIBS) $(LIBS)

exercise-checkers: $(EXERCISE_BINS)

exercise: all | test-deps
	@PTTH_BIN_DIR='$(abspath $(BIN))' PTTH_SAN='$(SAN)' MAKE='$(MAKE)' \
		bash scripts/exercise.sh '$(BUILD)' '$(N)'

# Exercise 11: exchange.c with the wake-up that exercises/breakit/ takes
# out, linked ahead of the library under the class's own unit suite
# test_exchange, which that exercise asks for.
BREAKIT_DIR := $(BUILD)/exercises/breakit
BREAKIT_PATCH := exercises/breakit/lost-wakeup.patch

$(BREAKIT_DIR)/exchange.c: src/common/exchange.c $(BREAKIT_PATCH)
	@mkdir -p $(@D)
	patch --quiet --output=$@ src/common/exchange.c $(BREAKIT_PATCH)

$(BREAKIT_DIR)/exchange.o: $(BREAKIT_DIR)/exchange.c | build-deps
	$(CC) $(ALL_CFLAGS) -Isrc/common -c $< -o $@

$(BREAKIT_DIR)/test_exchange: $(OBJ)/tests/test_exchange.o $(BREAKIT_DIR)/exchange.o \
		$(SUPPORT_OBJS) $(STATIC_LIB)
	$(CC) $(ALL_LDFLAGS) $(call wrap_flags,tests/test_exchange.c) -o $@ \
		$(filter %.o,$^) $(STATIC_LIB) $(CMOCKA_LIBS) $(LIBS)

# Exercise 12: fuzz_http1 built with the bug exercises/fuzz/planted.patch
# plants in a copy of src/router/http1.c; the library itself stays clean.
PLANTED_DIR := $(FUZZ_DIR)/exercise
PLANTED_PATCH := exercises/fuzz/planted.patch

$(PLANTED_DIR)/http1.c: src/router/http1.c $(PLANTED_PATCH)
	@mkdir -p $(@D)
	patch --quiet --output=$@ src/router/http1.c $(PLANTED_PATCH)

$(PLANTED_DIR)/http1.o: $(PLANTED_DIR)/http1.c | build-deps fuzz-deps
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(PLANTED_DIR)/fuzz_http1_planted: $(FUZZ_DIR)/obj/fuzz/fuzz_http1.o $(FUZZ_HELPER_OBJS) \
		$(filter-out %/src/router/http1.o,$(FUZZ_LIB_OBJS)) $(PLANTED_DIR)/http1.o
	$(FUZZ_CC) -pthread $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ \
		$(NGHTTP2_LIBS) $(HTTP_PARSER_LIBS) $(CRYPTO_LIBS)

exercise-fuzz: $(PLANTED_DIR)/fuzz_http1_planted
	@mkdir -p $(PLANTED_DIR)/corpus $(PLANTED_DIR)/found
	@echo "exercise-fuzz: $(FUZZ_SECONDS) s at most; a crash stops it and its input is" \
		"left in $(PLANTED_DIR)/found/"
	@$(PLANTED_DIR)/fuzz_http1_planted -max_total_time=$(FUZZ_SECONDS) \
		-dict=fuzz/http1.dict -artifact_prefix=$(PLANTED_DIR)/found/ \
		$(PLANTED_DIR)/corpus fuzz/corpus/fuzz_user; \
	found=$$(ls -t $(PLANTED_DIR)/found/crash-* 2>/dev/null | head -1); \
	if [ -n "$$found" ]; then \
		echo "exercise-fuzz: found $$found: keep it as a seed (exercise 12)"; \
	else \
		echo "exercise-fuzz: nothing found in $(FUZZ_SECONDS) s; run it longer"; \
	fi

check-exercises: | test-deps fuzz-deps
	@bash scripts/check-exercises.sh

# Coverage: the suites run on a -O0 gcov build (COVERAGE=1, build/coverage/),
# then gcovr sums up src/. Old counters are removed first so that each run
# measures itself. The figure is printed, with a WARNING line under
# COVERAGE_MIN percent of lines; only failing suites fail the target.
COVERAGE_MIN ?= 85
COVERAGE_PACKAGES := gcovr

coverage-deps: | build-deps
	@bash scripts/need-packages.sh $(COVERAGE_PACKAGES)

coverage: | test-deps coverage-deps
	@find build/coverage -name '*.gcda' -delete 2>/dev/null || true
	@$(MAKE) --no-print-directory COVERAGE=1 CFLAGS='-O0 -g' test; \
		status=$$?; \
		bash scripts/coverage-report.sh build/coverage $(COVERAGE_MIN) || \
		status=1; \
		exit $$status

# Static analysis, configured by .clang-tidy and scripts/cppcheck.supp.
# Both read the same compiler flags the build uses.
LINT_PACKAGES := cppcheck clang-tidy
LINT_SRCS := $(LIB_SRCS)
LINT_HDRS := $(sort $(wildcard $(LIB_SIDES:%=src/%/*.h) include/*.h))

lint-deps: | build-deps
	@bash scripts/need-packages.sh $(LINT_PACKAGES)

lint: | lint-deps
	@bash scripts/lint.sh "-std=c11 -D_GNU_SOURCE -Iinclude $(SIDE_INC) $(DEP_CFLAGS)" \
		$(LINT_SRCS) -- $(LINT_HDRS)

# Installing. ptth.pc is regenerated every time, since PREFIX may differ
# from the last run.
ptth.pc: ptth.pc.in FORCE
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
		-e 's|@VERSION@|$(VERSION)|g' $< > $@

install: all ptth.pc
	install -d '$(DESTDIR)$(INCLUDEDIR)' '$(DESTDIR)$(LIBDIR)' \
		'$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(PKGCONFIGDIR)'
	install -m 644 include/ptth.h '$(DESTDIR)$(INCLUDEDIR)'
	install -m 644 $(STATIC_LIB) $(SHARED_LIB) '$(DESTDIR)$(LIBDIR)'
	$(if $(EXAMPLES),install -m 755 $(EXAMPLES) '$(DESTDIR)$(BINDIR)')
	install -m 644 ptth.pc '$(DESTDIR)$(PKGCONFIGDIR)'

uninstall:
	rm -f '$(DESTDIR)$(INCLUDEDIR)/ptth.h' \
		'$(DESTDIR)$(LIBDIR)/libptth.a' '$(DESTDIR)$(LIBDIR)/libptth.so' \
		'$(DESTDIR)$(PKGCONFIGDIR)/ptth.pc' \
		$(addprefix '$(DESTDIR)$(BINDIR)/,$(addsuffix ',$(notdir $(EXAMPLES))))

clean:
	rm -rf build bin ptth.pc bench/results/raw

FORCE:

# Keep every object: otherwise make deletes the example and test objects as
# intermediate files and recompiles them on every run.
.SECONDARY:

-include $(wildcard $(LIB_OBJS:.o=.d) $(PIC_OBJS:.o=.d) \
	$(EXAMPLE_OBJS:.o=.d) $(EXAMPLE_PART_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(SUPPORT_OBJS:.o=.d) \
	$(FUZZ_DIR)/obj/*/*.d $(OBJ)/fuzz/*.d $(BUILD)/exercises/*.d $(BREAKIT_DIR)/*.d \
	$(PLANTED_DIR)/*.d)
