# Switchboard build.  Plain GNU make; libraries found through pkg-config.
#   make deps   install the Debian packages the build and tests need (idempotent)
#   make        build build/switchboard-router and build/switchboard-operator (release, -O2)
#   make test   every test: unit (release + ASan/UBSan/LSan), fuzz-regress, integration, a2a-test, api-test (schemathesis), tsan, e2e (real control plane), lint
#   make a2a-test  the A2A face with the official A2A SDKs (tests/a2a); A2A_TEST_ARGS='-k cancel' picks tests
#   make fuzz   every libFuzzer target under tests/fuzz for FUZZ_SECONDS (600) each; make fuzz-regress: the corpus, short runs
#   make tsan   the unit tests and a concurrent scenario under ThreadSanitizer
#   make demo   a local cluster with two real nodes, the chart (operator pod), two router pods; messages, a hot and a restart change
#   make bench  the benchmarks under bench/ (not part of make test); make bench-operator for the operator

SHELL := /bin/bash
CC ?= cc
PKGS := libcurl zlib jansson yaml-0.1 libmicrohttpd gnutls sqlite3 libsodium libxxhash yajl liburcu-bp
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo 0.1.0)

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wno-format-nonliteral -Wvla -Wpointer-arith
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Iinclude -Ilib -Irouter -Ioperator -DSB_VERSION='"$(VERSION)"' $(WARN) -MMD -MP
RELEASE_CFLAGS := -O2 -g -fstack-protector-strong -D_FORTIFY_SOURCE=2
SAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
LIBS = $(PKG_LIBS) -lpthread -lm

LIB_SRC := $(wildcard lib/*.c)
ROUTER_SRC := $(filter-out router/main.c,$(wildcard router/*.c))
OPERATOR_SRC := $(filter-out operator/main.c,$(wildcard operator/*.c))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_NAMES := $(patsubst tests/unit/%.c,%,$(UNIT_SRC))

REL := build/rel
SAN := build/san

.PHONY: all deps test unit unit-release unit-san integration a2a-test api-test e2e fuzz fuzz-regress fuzz-build lint format demo demo-down bench bench-cluster bench-operator bench-peers peer-deps images clean help tsan unit-tsan

all: build/switchboard-router build/switchboard-operator

help:
	@sed -n '1,10p' Makefile

deps:
	@bash scripts/deps.sh

# --- objects ---------------------------------------------------------------
$(REL)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(RELEASE_CFLAGS) $(PKG_CFLAGS) -c $< -o $@

$(SAN)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(SAN_CFLAGS) $(PKG_CFLAGS) -c $< -o $@

REL_LIB_OBJ := $(LIB_SRC:%.c=$(REL)/%.o)
SAN_LIB_OBJ := $(LIB_SRC:%.c=$(SAN)/%.o)
REL_RT_OBJ := $(ROUTER_SRC:%.c=$(REL)/%.o)
SAN_RT_OBJ := $(ROUTER_SRC:%.c=$(SAN)/%.o)

build/switchboard-router: $(REL_LIB_OBJ) $(REL_RT_OBJ) $(REL)/router/main.o
	$(CC) $(RELEASE_CFLAGS) -o $@ $^ $(LIBS)

build/switchboard-router-san: $(SAN_LIB_OBJ) $(SAN_RT_OBJ) $(SAN)/router/main.o
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(LIBS)

REL_OP_OBJ := $(OPERATOR_SRC:%.c=$(REL)/%.o)
SAN_OP_OBJ := $(OPERATOR_SRC:%.c=$(SAN)/%.o)

# --as-needed: the operator does not load the router-only libraries (sqlite,
# yajl, urcu, ...): fewer mapped pages, smaller resident set
build/switchboard-operator: $(REL_LIB_OBJ) $(REL_OP_OBJ) $(REL)/operator/main.o
	$(CC) $(RELEASE_CFLAGS) -Wl,--as-needed -o $@ $^ $(LIBS)

build/switchboard-operator-san: $(SAN_LIB_OBJ) $(SAN_OP_OBJ) $(SAN)/operator/main.o
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(LIBS)

# --- unit tests (cmocka) -----------------------------------------------------
# test_op*.c test operator modules; the others test router modules
$(REL)/tests/test_op: $(REL)/tests/unit/test_op.o $(REL_LIB_OBJ) $(REL_OP_OBJ)
	$(CC) $(RELEASE_CFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(SAN)/tests/test_op: $(SAN)/tests/unit/test_op.o $(SAN_LIB_OBJ) $(SAN_OP_OBJ)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(REL)/tests/test_op_%: $(REL)/tests/unit/test_op_%.o $(REL_LIB_OBJ) $(REL_OP_OBJ)
	$(CC) $(RELEASE_CFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(SAN)/tests/test_op_%: $(SAN)/tests/unit/test_op_%.o $(SAN_LIB_OBJ) $(SAN_OP_OBJ)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(REL)/tests/%: $(REL)/tests/unit/%.o $(REL_LIB_OBJ) $(REL_RT_OBJ)
	$(CC) $(RELEASE_CFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(SAN)/tests/%: $(SAN)/tests/unit/%.o $(SAN_LIB_OBJ) $(SAN_RT_OBJ)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(LIBS) -lcmocka

unit-release: $(UNIT_NAMES:%=$(REL)/tests/%)
	@set -e; for t in $^; do echo "== $$t"; $$t; done

# ASan + UBSan, with LeakSanitizer on: any leak fails the run.
unit-san: $(UNIT_NAMES:%=$(SAN)/tests/%)
	@set -e; for t in $^; do echo "== $$t (asan+ubsan+lsan)"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $$t; done

unit: unit-release unit-san

# --- ThreadSanitizer: unit tests and a concurrent scenario (make tsan) --------
# Objects under build/tsan/; the same warnings as the other builds.  A race
# stops the run (halt_on_error).  tests/tsan/urcu-tsan.h makes liburcu's
# publication and grace periods visible to TSan (see the header).  No
# suppressions: none of the races found was inside a library; a race in
# router/, lib/ or operator/ is fixed, never suppressed.
TSAN := build/tsan
TSAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
TSAN_LIB_OBJ := $(LIB_SRC:%.c=$(TSAN)/%.o)
TSAN_RT_OBJ := $(ROUTER_SRC:%.c=$(TSAN)/%.o)
TSAN_OP_OBJ := $(OPERATOR_SRC:%.c=$(TSAN)/%.o)

$(TSAN)/%.o: %.c tests/tsan/urcu-tsan.h
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(TSAN_CFLAGS) -include tests/tsan/urcu-tsan.h $(PKG_CFLAGS) -c $< -o $@

build/switchboard-router-tsan: $(TSAN_LIB_OBJ) $(TSAN_RT_OBJ) $(TSAN)/router/main.o
	$(CC) $(TSAN_CFLAGS) -o $@ $^ $(LIBS)

$(TSAN)/tests/test_op: $(TSAN)/tests/unit/test_op.o $(TSAN_LIB_OBJ) $(TSAN_OP_OBJ)
	$(CC) $(TSAN_CFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(TSAN)/tests/test_op_%: $(TSAN)/tests/unit/test_op_%.o $(TSAN_LIB_OBJ) $(TSAN_OP_OBJ)
	$(CC) $(TSAN_CFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(TSAN)/tests/%: $(TSAN)/tests/unit/%.o $(TSAN_LIB_OBJ) $(TSAN_RT_OBJ)
	$(CC) $(TSAN_CFLAGS) -o $@ $^ $(LIBS) -lcmocka

unit-tsan: $(UNIT_NAMES:%=$(TSAN)/tests/%)
	@set -e; for t in $^; do echo "== $$t (tsan)"; $(TSAN_ENV) $$t; done

tsan: unit-tsan build/switchboard-router-tsan
	cd tests/integration && $(TSAN_ENV) SB_ROUTER=$(CURDIR)/build/switchboard-router-tsan SB_CONCURRENT_SECONDS=20 \
	  /usr/bin/python3 -m pytest -q -s -p no:cacheprovider test_concurrent.py

# --- integration tests (real router processes over HTTP) ---------------------
integration: build/switchboard-router build/switchboard-router-san
	cd tests/integration && /usr/bin/python3 -m pytest -q -p no:cacheprovider .

# --- A2A: the router's A2A face (docs/a2a.md) with the official SDKs -----------
# The Python SDK (a2a-sdk, pinned in tests/a2a/requirements.txt, its own cached venv) and the JS SDK
# (@a2a-js/sdk, tests/a2a/js/package-lock.json, npm ci once per lock) against real routers.
# A2A_TEST_ARGS: more pytest arguments, e.g. make a2a-test A2A_TEST_ARGS='-k "cancel or card" -x'
A2A_TEST_ARGS ?=
a2a-test: build/switchboard-router
	@venv=$$(bash scripts/pytools.sh tests/a2a/requirements.txt) && bash scripts/jstools.sh tests/a2a/js && \
	  cd tests/a2a && $$venv/bin/python -m pytest -q -p no:cacheprovider $(A2A_TEST_ARGS) .

# --- API contract: schemathesis against real routers (docs/api/openapi.yaml) ----
api-test: build/switchboard-router-san
	@venv=$$(bash scripts/pytools.sh) && $$venv/bin/python tests/api/run.py

# --- e2e: the operator's world, against a real kube-apiserver/etcd/kcm -------
# Host settings a kubelet changes; e2e/cluster down restores them, and this checks it did.
HOST_SYSCTLS := vm.overcommit_memory kernel.panic kernel.panic_on_oops
E2E_LEFT := $${SB_E2E_STATE:-/tmp/switchboard-e2e}/pytest-|sb-e2e-o[p]-|sb-pro[m]-

e2e: build/switchboard-router build/switchboard-operator-san images
	@bash e2e/cluster build >/dev/null
	@sysctl -n $(HOST_SYSCTLS) >build/e2e-sysctls.before
	cd e2e/tests && /usr/bin/python3 -m pytest -q -p no:cacheprovider .
	@if pgrep -f "$(E2E_LEFT)" >/dev/null; then \
	  echo "e2e: processes were left behind (control plane, kubelets, containerd, shims or pods):"; \
	  pgrep -af "$(E2E_LEFT)"; exit 1; fi
	@if ls -d /sys/fs/cgroup/*/sb-e2e-pytest-* /sys/fs/cgroup/sb-e2e-pytest-* 2>/dev/null; then \
	  echo "e2e: node cgroups (and the pods in them) were left behind"; exit 1; fi
	@sysctl -n $(HOST_SYSCTLS) | diff -u build/e2e-sysctls.before - || \
	  { echo "e2e: host settings ($(HOST_SYSCTLS)) were not restored"; exit 1; }

# --- fuzzing (libFuzzer, clang-14) -----------------------------------------
# Each tests/fuzz/fuzz_<t>.c is one target; the code under test is built again
# with clang-14 and the fuzzer's coverage and sanitizers into build/fuzz/obj/.
# Committed seeds: tests/fuzz/corpus/<t>/; crashes that must stay fixed:
# tests/fuzz/regress/<t>/; dictionaries: tests/fuzz/<t>.dict.
FUZZ_CC := clang-14
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := $(BASE_CFLAGS) -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ := build/fuzz
FUZZ_SECONDS ?= 600
FUZZ_REGRESS_SECONDS ?= 15
FUZZ_REGRESS_RUNS ?= 500000
# a fixed seed: CI replays the exploration a developer ran, and new findings come from make fuzz
FUZZ_REGRESS_SEED ?= 1
FUZZ_LIB_TARGETS := cfg metrics
FUZZ_RT_TARGETS := msg a2a
FUZZ_OP_TARGETS := kubeconfig watch configmap render
FUZZ_TARGETS := $(FUZZ_LIB_TARGETS) $(FUZZ_RT_TARGETS) $(FUZZ_OP_TARGETS)
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ)/fuzz_%)

$(FUZZ)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(PKG_CFLAGS) -c $< -o $@

FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ)/obj/%.o)
FUZZ_RT_OBJ := $(ROUTER_SRC:%.c=$(FUZZ)/obj/%.o)
FUZZ_OP_OBJ := $(OPERATOR_SRC:%.c=$(FUZZ)/obj/%.o)
FUZZ_LINK = $(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(LIBS)

$(FUZZ_LIB_TARGETS:%=$(FUZZ)/fuzz_%): $(FUZZ)/fuzz_%: $(FUZZ)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_LINK)

$(FUZZ_RT_TARGETS:%=$(FUZZ)/fuzz_%): $(FUZZ)/fuzz_%: $(FUZZ)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ) $(FUZZ_RT_OBJ)
	$(FUZZ_LINK)

$(FUZZ_OP_TARGETS:%=$(FUZZ)/fuzz_%): $(FUZZ)/fuzz_%: $(FUZZ)/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ) $(FUZZ_OP_OBJ)
	$(FUZZ_LINK)

fuzz-build: $(FUZZ_BINS)

# Arguments shared by both runs: the dictionary, a per-input time limit,
# crashes into build/fuzz/crashes/.
FUZZ_ARGS = $$([ -f tests/fuzz/$$t.dict ] && echo -dict=tests/fuzz/$$t.dict) -timeout=20 -rss_limit_mb=2048 \
	-artifact_prefix=$(FUZZ)/crashes/$$t- -print_final_stats=1

# Explore: new inputs go to build/fuzz/corpus/<t>/ (the first directory), the
# committed seeds are read only.  Every target runs; any crash fails at the end.
fuzz: $(FUZZ_BINS)
	@mkdir -p $(FUZZ)/crashes; failed=""; \
	for t in $(FUZZ_TARGETS:%=fuzz_%); do \
	  mkdir -p $(FUZZ)/corpus/$$t; echo "== $$t ($(FUZZ_SECONDS) s)"; \
	  $(FUZZ)/$$t $(FUZZ_ARGS) -max_total_time=$(FUZZ_SECONDS) $(FUZZ)/corpus/$$t \
	    tests/fuzz/corpus/$$t $$(ls -d tests/fuzz/regress/$$t 2>/dev/null) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in:$$failed (inputs in $(FUZZ)/crashes/)"; exit 1; fi

# Regression: replay every committed seed and regress/ input (any crash
# fails), then a short bounded run per target.  A crash in the short run fails
# too, except for a target with inputs in tests/fuzz/pending/ (defects known
# and not fixed yet): its crash is reported and kept in build/fuzz/crashes/.
# Empty pending/<t> when the fix lands and the short run is strict again.
fuzz-regress: $(FUZZ_BINS)
	@mkdir -p $(FUZZ)/crashes; set -e; start=$$(date +%s); \
	for t in $(FUZZ_TARGETS:%=fuzz_%); do \
	  rm -rf $(FUZZ)/regress/$$t; mkdir -p $(FUZZ)/regress/$$t; log=$(FUZZ)/regress/$$t.log; echo "== $$t"; \
	  $(FUZZ)/$$t $(FUZZ_ARGS) -runs=0 tests/fuzz/corpus/$$t $$(ls -d tests/fuzz/regress/$$t 2>/dev/null) \
	    >$$log 2>&1 || { tail -n 60 $$log; echo "fuzz-regress: $$t fails on a committed input"; exit 1; }; \
	  if ! $(FUZZ)/$$t $(FUZZ_ARGS) -seed=$(FUZZ_REGRESS_SEED) -max_total_time=$(FUZZ_REGRESS_SECONDS) \
	      -runs=$(FUZZ_REGRESS_RUNS) \
	      $(FUZZ)/regress/$$t tests/fuzz/corpus/$$t >>$$log 2>&1; then \
	    if [ -n "$$(ls tests/fuzz/pending/$$t 2>/dev/null)" ]; then \
	      echo "   crash in the short run; $$t has pending defects (tests/fuzz/pending/$$t):"; \
	      grep -m1 -E 'runtime error|invariant broken|ERROR: AddressSanitizer' $$log | sed 's/^/   /'; \
	    else tail -n 60 $$log; echo "fuzz-regress: $$t crashed (input in $(FUZZ)/crashes/)"; exit 1; fi; \
	  fi; \
	  grep -E '^#[0-9]+[[:space:]]+DONE' $$log | tail -n 1 || true; \
	done; echo "fuzz-regress: ok ($$(( $$(date +%s) - start )) s)"

lint:
	@bash scripts/lint.sh

format:
	clang-format -i $(LIB_SRC) $(ROUTER_SRC) router/main.c $(OPERATOR_SRC) operator/main.c include/switchboard/*.h \
	  lib/*.h router/*.h operator/*.h $(UNIT_SRC) $(BENCH_SRC) tests/fuzz/*.c tests/fuzz/*.h

test: deps
	$(MAKE) all build/switchboard-router-san build/switchboard-operator-san
	$(MAKE) unit
	$(MAKE) fuzz-regress
	$(MAKE) integration
	$(MAKE) a2a-test
	$(MAKE) api-test
	$(MAKE) tsan
	$(MAKE) e2e
	$(MAKE) lint

# OCI images without a daemon (buildah); see scripts/images.sh
images: deps all
	@bash scripts/images.sh

demo: deps all
	@bash scripts/images.sh
	@bash scripts/demo.sh

demo-down:
	@bash scripts/demo.sh down

# --- benchmarks (not part of make test) ------------------------------------
BENCH_SRC := $(wildcard bench/*.c)
$(REL)/bench/bench_render: $(REL)/bench/bench_render.o $(REL_LIB_OBJ) $(REL_OP_OBJ)
	$(CC) $(RELEASE_CFLAGS) -o $@ $^ $(LIBS)

$(REL)/bench/%: $(REL)/bench/%.o $(REL_LIB_OBJ) $(REL_RT_OBJ)
	$(CC) $(RELEASE_CFLAGS) -o $@ $^ $(LIBS)

bench: deps all $(BENCH_SRC:bench/%.c=$(REL)/bench/%)
	@bash bench/run.sh

# the cost of forwarding between router replicas (docs/cluster.md)
bench-cluster: deps all $(REL)/bench/loadgen $(REL)/bench/own_of
	@bash bench/cluster.sh
	@bash bench/handoff.sh

# --- peer benchmarks (bench/peers): Redis Streams, NATS JetStream and RabbitMQ side by side ---
PEER_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Ibench/peers
build/peers/peer_redis: bench/peers/peer_redis.c bench/peers/peer.c bench/peers/peer.h
	@mkdir -p $(dir $@)
	$(CC) $(PEER_CFLAGS) -o $@ bench/peers/peer_redis.c bench/peers/peer.c -lhiredis -lpthread

build/peers/peer_nats: bench/peers/peer_nats.c bench/peers/peer.c bench/peers/peer.h
	@mkdir -p $(dir $@)
	$(CC) $(PEER_CFLAGS) -o $@ bench/peers/peer_nats.c bench/peers/peer.c -lnats -lpthread

# nats-server 2.10+ (Debian's 2.9 refuses jetstream sync_interval: always), built from the Go module proxy at
# the version and go.sum pinned in bench/peers/tools; rebuilt only when the pin changes (the modules stay in
# Go's module cache, so a rebuild after `make clean` needs no network)
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
build/peers/bin/nats-server: bench/peers/tools/go.mod bench/peers/tools/go.sum bench/peers/tools/tools.go
	@mkdir -p $(dir $@)
	cd bench/peers/tools && CGO_ENABLED=0 $(GO) build -mod=readonly -trimpath -ldflags='-s -w' \
		-o $(CURDIR)/$@.tmp github.com/nats-io/nats-server/v2
	mv $@.tmp $@

build/peers/peer_rabbit: bench/peers/peer_rabbit.c bench/peers/peer.c bench/peers/peer.h
	@mkdir -p $(dir $@)
	$(CC) $(PEER_CFLAGS) -o $@ bench/peers/peer_rabbit.c bench/peers/peer.c -lrabbitmq -lpthread

peer-deps:
	@bash scripts/deps.sh redis-server libhiredis-dev libnats-dev gnuplot-nox rabbitmq-server librabbitmq-dev

bench-peers: deps peer-deps all $(REL)/bench/loadgen build/peers/peer_redis build/peers/peer_nats \
		build/peers/peer_rabbit build/peers/bin/nats-server
	@bash bench/peers/run.sh

# the operator against a real control plane (e2e/cluster), plus its render CPU
bench-operator: deps all $(REL)/bench/bench_render
	@bash e2e/cluster build >/dev/null
	$(REL)/bench/bench_render
	/usr/bin/python3 bench/operator_bench.py

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
