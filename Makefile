# Makefile -- builds libptth, the example programs and the test suites.
#
#   make                 library (build/libptth.a, build/libptth.so) and bin/*
#   make test            also builds build/tests/test_* and runs every suite
#   make asan-test       the same under AddressSanitizer + UBSan (build/asan/)
#   make tsan-test       the same under ThreadSanitizer (build/tsan/)
#   make demo            router, backend and user talking on localhost
#   make install         PREFIX=/usr/local, DESTDIR honoured
#   make clean           back to the tree as cloned
#
# Variables: CFLAGS (default -O2 -g), WERROR=1 (warnings are errors),
# SAN=address|thread (sanitizer build in its own directory), TESTS="queue
# tunnel" (run only the suites whose names contain one of the words), V=1
# (stream test output instead of printing it only for failing suites).

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
	libhttp-parser-dev libcurl4-openssl-dev
TEST_PACKAGES := libcmocka-dev curl nghttp2-client nghttp2-server socat

# Output directories. A sanitizer build keeps everything, including its
# programs, apart from the normal build, so both can coexist.
SAN ?=
ifeq ($(SAN),)
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
DEP_CFLAGS := $(call pc_cflags,libnghttp2 libcurl)
NGHTTP2_LIBS := $(call pc_libs,libnghttp2,-lnghttp2)
CURL_LIBS := $(call pc_libs,libcurl,-lcurl)
CMOCKA_CFLAGS := $(call pc_cflags,cmocka)
CMOCKA_LIBS := $(call pc_libs,cmocka,-lcmocka)
HTTP_PARSER_LIBS := -lhttp_parser

WARN_FLAGS := -Wall -Wextra
ifeq ($(WERROR),1)
WARN_FLAGS += -Werror
endif

ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN_FLAGS) -pthread -Iinclude -Isrc \
	$(DEP_CFLAGS) $(SAN_FLAGS) $(CFLAGS) $(CPPFLAGS) -MMD -MP
ALL_LDFLAGS = -pthread $(SAN_FLAGS) $(LDFLAGS)
LIBS = $(NGHTTP2_LIBS) $(HTTP_PARSER_LIBS) $(CURL_LIBS) $(LDLIBS)

# Sources, found by globbing: every src/*.c is part of the library, every
# examples/NAME.c becomes bin/NAME, every tests/test_NAME.c becomes the
# suite build/tests/test_NAME linked with the helpers in tests/support/.
LIB_SRCS := $(sort $(wildcard src/*.c))
EXAMPLE_SRCS := $(sort $(wildcard examples/*.c))
TEST_SRCS := $(sort $(wildcard tests/test_*.c))
SUPPORT_SRCS := $(sort $(wildcard tests/support/*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(OBJ)/%.o)
PIC_OBJS := $(LIB_SRCS:%.c=$(PIC)/%.o)
EXAMPLE_OBJS := $(EXAMPLE_SRCS:%.c=$(OBJ)/%.o)
TEST_OBJS := $(TEST_SRCS:%.c=$(OBJ)/%.o)
SUPPORT_OBJS := $(SUPPORT_SRCS:%.c=$(OBJ)/%.o)

STATIC_LIB := $(BUILD)/libptth.a
# The shared library is for installing; sanitizer builds skip it.
ifeq ($(SAN),)
SHARED_LIB := $(BUILD)/libptth.so
endif
EXAMPLES := $(EXAMPLE_SRCS:examples/%.c=$(BIN)/%)
TESTS_BIN := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)

# A test that mocks system calls names them in its source, on a line of its
# own:  /* wrap: send recv */  -- each becomes -Wl,--wrap=NAME at link time.
comma := ,
wrap_flags = $(addprefix -Wl$(comma)--wrap=,\
	$(shell sed -n 's,^/\* wrap: \(.*\) \*/,\1,p' $(1)))

.PHONY: all lib examples tests test asan-test tsan-test demo install \
	uninstall clean build-deps test-deps FORCE

all: lib examples

lib: $(STATIC_LIB) $(SHARED_LIB)

examples: $(EXAMPLES)

tests: $(TESTS_BIN)

# Installing missing packages. These are phony and always run, but they are
# order-only prerequisites of the objects, so they never force a rebuild,
# and each runs at most once per make invocation.
build-deps:
	@bash scripts/need-packages.sh $(BUILD_PACKAGES)

test-deps: | build-deps
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

$(OBJ)/tests/%.o: tests/%.c | build-deps test-deps
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests $(CMOCKA_CFLAGS) -c $< -o $@

# Linking. The archive is rebuilt from scratch so that objects of deleted
# sources do not linger in it.
$(STATIC_LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(SHARED_LIB): $(PIC_OBJS)
	@mkdir -p $(@D)
	$(CC) -shared $(ALL_LDFLAGS) -o $@ $^ $(NGHTTP2_LIBS) \
		$(HTTP_PARSER_LIBS) $(LDLIBS)

$(BIN)/%: $(OBJ)/examples/%.o $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(STATIC_LIB) $(LIBS)

$(BUILD)/tests/%: $(OBJ)/tests/%.o $(SUPPORT_OBJS) $(STATIC_LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_LDFLAGS) $(call wrap_flags,tests/$*.c) -o $@ \
		$< $(SUPPORT_OBJS) $(STATIC_LIB) $(CMOCKA_LIBS) $(LIBS)

# Running. Suites find the example programs through PTTH_BIN_DIR.
test: $(STATIC_LIB) $(EXAMPLES) $(TESTS_BIN) | test-deps
	@PTTH_BIN_DIR='$(abspath $(BIN))' PTTH_SAN='$(SAN)' \
		PTTH_TESTS='$(TESTS)' PTTH_TEST_VERBOSE='$(V)' \
		bash scripts/run-tests.sh $(BUILD)/tests/logs $(TESTS_BIN)

asan-test:
	$(MAKE) SAN=address test

tsan-test:
	$(MAKE) SAN=thread test

demo: all
	@bash scripts/demo.sh $(BIN)

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
	rm -rf build bin ptth.pc

FORCE:

# Keep every object: otherwise make deletes the example and test objects as
# intermediate files and recompiles them on every run.
.SECONDARY:

-include $(wildcard $(LIB_OBJS:.o=.d) $(PIC_OBJS:.o=.d) \
	$(EXAMPLE_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(SUPPORT_OBJS:.o=.d))
