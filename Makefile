# sanxiang: one Makefile for libsx, the services, sxctl and the tests.
#
#   make              build everything into build/ (libsx.a, build/bin/sx-*, sxctl)
#   make test         install missing packages, build, run every test against real servers
#   make test SAN=1   the same under AddressSanitizer + UndefinedBehaviorSanitizer (= make asan)
#   make test T=evmsg run one test binary (build/tests/test_evmsg) under the harness
#   make test-fault   the system fault suite: SIGKILLs and restarts under load (tests/fault-system)
#   make fuzz         run each libFuzzer target for FUZZ_SECONDS (default 60)
#   make bench-NAME   a benchmark, tools/bench/NAME.sh: a table and build/bench/NAME.json
#   make run          the whole system locally, with the example registry (deploy/dev-stack)
#   make format       clang-format every C file (make format-check: fail if one is not)

TOP := $(abspath .)
SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD ?= build
SANFLAGS :=
endif

CC ?= cc
PKGS := libzmq libpq msgpack hiredis libcurl libmicrohttpd jansson libsodium libcrypto
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS = $(shell pkg-config --libs cmocka 2>/dev/null)

WARN := -Wall -Wextra -Wstrict-prototypes -Wwrite-strings -Werror
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE $(WARN) $(SANFLAGS) -MMD -MP -Icommon -Itests/support $(PKG_CFLAGS)
LDFLAGS += $(SANFLAGS)
LDLIBS := $(PKG_LIBS) -lm -lpthread

# libsx: every common/*.c
LIB_SRC := $(sort $(wildcard common/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIBSX := $(BUILD)/libsx.a

# services/<name>/*.c -> $(BUILD)/bin/sx-<name>
SERVICES := $(notdir $(patsubst %/,%,$(sort $(dir $(wildcard services/*/main.c)))))
SERVICE_BINS := $(SERVICES:%=$(BUILD)/bin/sx-%)

# tools/<name>/*.c -> $(BUILD)/bin/<name>
TOOLS := $(notdir $(patsubst %/,%,$(sort $(dir $(wildcard tools/*/main.c)))))
TOOL_BINS := $(TOOLS:%=$(BUILD)/bin/%)

# tests: tests/unit/test_*.c and tests/integration/test_*.c, one binary each,
# linked with tests/support/*.c
SUPPORT_SRC := $(sort $(wildcard tests/support/*.c))
SUPPORT_OBJ := $(SUPPORT_SRC:%.c=$(BUILD)/obj/%.o)
TEST_SRC := $(sort $(wildcard tests/unit/test_*.c tests/integration/test_*.c tests/fault/test_*.c tests/e2e/test_*.c))
TEST_BINS := $(addprefix $(BUILD)/tests/,$(notdir $(TEST_SRC:.c=)))

# A service's own logic tested directly: tests/services/<svc>/test_<x>.c becomes
# $(BUILD)/tests/test_<svc>_<x>, linked with the service's objects other than main.o.
SVC_TEST_SRC := $(sort $(wildcard tests/services/*/test_*.c))
svc_of = $(word 3,$(subst /, ,$(1)))
svc_test_bin = $(BUILD)/tests/test_$(call svc_of,$(1))_$(patsubst test_%,%,$(notdir $(1:.c=)))
TEST_BINS += $(foreach t,$(SVC_TEST_SRC),$(call svc_test_bin,$(t)))

.PHONY: all test asan fuzz run format format-check deps clean
all: $(LIBSX) $(SERVICE_BINS) $(TOOL_BINS)

# Installs missing Debian packages first (a no-op when all are present).
deps:
	@./deploy/install-deps

# Quiet by default; V=1 shows the full commands.
ifeq ($(V),1)
Q :=
else
Q := @
endif

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

$(LIBSX): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(Q)$(AR) rcs $@ $^

define service_rule
$(BUILD)/bin/sx-$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard services/$(1)/*.c)) $(LIBSX)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  LINK    $$@")
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rule,$(s))))

define tool_rule
$(BUILD)/bin/$(1): $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tools/$(1)/*.c)) $(LIBSX)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  LINK    $$@")
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach t,$(TOOLS),$(eval $(call tool_rule,$(t))))

define test_rule
$(BUILD)/tests/$(notdir $(1:.c=)): $(BUILD)/obj/$(1:.c=.o) $(SUPPORT_OBJ) $(LIBSX)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  LINK    $$@")
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(CMOCKA_LIBS) $$(LDLIBS)
endef
$(foreach t,$(TEST_SRC),$(eval $(call test_rule,$(t))))

define svc_test_rule
$(call svc_test_bin,$(1)): $(BUILD)/obj/$(1:.c=.o) $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out %/main.c,$(wildcard services/$(call svc_of,$(1))/*.c))) $(SUPPORT_OBJ) $(LIBSX)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  LINK    $$@")
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(CMOCKA_LIBS) $$(LDLIBS)
endef
$(foreach t,$(SVC_TEST_SRC),$(eval $(call svc_test_rule,$(t))))

# The harness starts a throw-away PostgreSQL and Redis, runs the tests, and stops both
# by PID however the run ends. T=name runs one test binary.
test: deps
	@$(MAKE) --no-print-directory all-tests
	@BUILD=$(BUILD) ./tests/harness/with-servers ./tests/run $(T)

all-tests: all $(TEST_BINS)

# The system fault suite (issue 9): tests/fault-system/fault_*.c, one driver that kills
# and restarts every service, the broker, Redis and PostgreSQL under load, then compares
# with a run without faults. SX_FAULT_SEED replays a schedule, SX_FAULT_CASES sizes it.
.PHONY: test-fault
FAULT_SYS_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/fault-system/fault_*.c))
$(BUILD)/tests/fault_system: $(FAULT_SYS_OBJ) $(SUPPORT_OBJ) $(LIBSX)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS)

test-fault: deps
	@$(MAKE) --no-print-directory all $(BUILD)/tests/fault_system
	@BUILD=$(BUILD) ./tests/harness/with-servers ./tests/fault-system/run

asan:
	@$(MAKE) --no-print-directory test SAN=1

# libFuzzer targets: tests/fuzz/fuzz_*.c, built with clang against the common sources.
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(addprefix build/fuzz/,$(notdir $(FUZZ_SRC:.c=)))
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Icommon $(PKG_CFLAGS) \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
build/fuzz/%: tests/fuzz/%.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(PKG_LIBS) -lm -lpthread

fuzz: deps $(FUZZ_BINS)
	@./tests/fuzz/run $(FUZZ_SECONDS) $(FUZZ_BINS)

# Benchmarks: a table on stdout and build/bench/<name>.json, with a reference figure
# measured in the same run. Under throw-away servers with fsync on.
# Each tools/bench/<name>.sh is `make bench-<name>`.
BENCHES := $(notdir $(basename $(wildcard tools/bench/*.sh)))
.PHONY: $(BENCHES:%=bench-%)
$(BENCHES:%=bench-%): bench-%: deps all
	@mkdir -p build/bench
	@SX_PG_FSYNC=1 ./tests/harness/with-servers env SX_BIN=$(TOP)/$(BUILD)/bin \
		BENCH_OUT=$(TOP)/build/bench/$*.json ./tools/bench/$*.sh

run: deps all
	@./deploy/dev-stack

C_FILES = $(shell find common services tools tests -name '*.[ch]')

format:
	clang-format -i $(C_FILES)

# STYLE.md 10: the code is formatted with .clang-format (SQL and other hand-laid text
# sits between clang-format off/on).
format-check: deps
	@clang-format --dry-run -Werror $(C_FILES) && echo "format-check: every C file is formatted"

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
