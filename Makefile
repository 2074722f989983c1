# cairn — see README.md. `make check` and `make demo` install what is missing.
PREFIX ?= /usr/local
CC ?= cc
PKGS := libzstd libcrypto libxxhash jansson libnbd libvirt libvirt-qemu libxml-2.0 libcurl inih libmicrohttpd
CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -pthread -I. -D_FILE_OFFSET_BITS=64 -D_GNU_SOURCE
# where `make install` puts the console's page (the agent's default www-dir)
CFLAGS += -DCAIRN_WWW_DIR='"$(PREFIX)/share/cairn/www"'
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LDLIBS += $(PKG_LIBS) -pthread

# apt packages for building, testing, the demo and the benchmark
APT_BUILD := build-essential pkg-config libzstd-dev libssl-dev libxxhash-dev \
	libjansson-dev libnbd-dev libcmocka-dev libvirt-dev libxml2-dev \
	nbdkit-plugin-dev libcurl4-openssl-dev libinih-dev clang libclang-rt-14-dev libmicrohttpd-dev
APT_RUN := qemu-utils nbdkit libnbd-bin e2fsprogs python3 openssl util-linux \
	libvirt-daemon-system libvirt-clients qemu-system-x86 linux-image-amd64 \
	busybox-static cpio xz-utils qemu-guest-agent python3-libnbd ceph-mon ceph-osd radosgw ceph-common curl openssh-server \
	chromium
# the console's page test drives Chromium with puppeteer-core from npm
TEST_NODE := /usr/local/lib/cairn-test-node
PUPPETEER := puppeteer-core@25
APT_BENCH := restic borgbackup zstd time openssl virtnbdbackup rclone
DEPS_STAMP := .deps-ok

# every header, the transports' one level down too (a change rebuilds all)
HEADERS := $(wildcard */*.h repo/transport/*.h)
BASE_SRC := $(wildcard base/*.c)
REPO_SRC := $(wildcard repo/*.c repo/transport/*.c)
AGENT_SRC := $(wildcard agent/*.c)
RESTORE_SRC := $(wildcard restore/*.c)
REPLICATE_SRC := $(wildcard replicate/*.c)
DAEMON_SRC := $(wildcard daemon/*.c)
CLI_SRC := $(wildcard cli/*.c)
# serve/: the nbdkit plugin is its own shared object; the rest goes into cairn
PLUGIN_MAIN := serve/plugin.c
SERVE_SRC := $(filter-out $(PLUGIN_MAIN),$(wildcard serve/*.c))
PLUGIN_SRC := $(PLUGIN_MAIN) serve/reader.c serve/cache.c serve/prefetch.c serve/blob_cache.c \
	serve/cache_writer.c serve/cache_ledger.c $(BASE_SRC) $(REPO_SRC)
PLUGIN := build/nbdkit-cairn-plugin.so
PLUGIN_PKGS := libzstd libcrypto libxxhash jansson libcurl libxml-2.0 inih
LIB_SRC := $(BASE_SRC) $(REPO_SRC) $(AGENT_SRC) $(RESTORE_SRC) $(SERVE_SRC) $(REPLICATE_SRC) $(DAEMON_SRC)
LIB_OBJ := $(LIB_SRC:%.c=build/%.o)
CLI_OBJ := $(CLI_SRC:%.c=build/%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/tests/%)
ASAN_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)
ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
TSAN_BIN := $(UNIT_SRC:tests/unit/%.c=build/tsan/tests/%)
TSAN_FLAGS := -O1 -g -fsanitize=thread -fno-omit-frame-pointer
# ThreadSanitizer needs a narrow address space layout: without ASLR it runs
# whatever vm.mmap_rnd_bits the machine has
TSAN_RUN := setarch $(shell uname -m) -R env TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp"
# integration tests that run threads: backup and restore, gc beside
# backups, replication, check --read-data. serve's threads (nbdkit's and
# the prefetchers over one reader and cache) are checked by the unit tests
# test_serve_reader and test_serve_cache: nbdkit cannot load an
# instrumented plugin without the TSan runtime preloaded into everything
# it starts, and qemu-img's coroutines abort under it
TSAN_IT := t_roundtrip_raw t_encryption t_gc_concurrent t_replicate_rechunk t_check t_multidisk

.PHONY: all deps check layers unit asan tsan integration demo bench install clean fuzz fuzz-check

all: cairn $(PLUGIN)

cairn: $(LIB_OBJ) $(CLI_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# only the plugin's entry points are exported (nbdkit loads it with dlopen)
$(PLUGIN): $(PLUGIN_SRC:%.c=build/pic/%.o)
	$(CC) $(CFLAGS) -shared -o $@ $^ $(shell pkg-config --libs $(PLUGIN_PKGS)) -pthread

build/pic/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -fvisibility=hidden $(PKG_CFLAGS) -c -o $@ $<

build/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

build/asan/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) $(PKG_CFLAGS) -c -o $@ $<

build/tests/%: tests/unit/%.c tests/unit/helpers.h $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS) -lcmocka

build/asan/tests/%: tests/unit/%.c tests/unit/helpers.h $(LIB_SRC:%.c=build/asan/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) $(PKG_CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS) -lcmocka

build/tsan/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TSAN_FLAGS) $(PKG_CFLAGS) -c -o $@ $<

build/tsan/tests/%: tests/unit/%.c tests/unit/helpers.h $(LIB_SRC:%.c=build/tsan/%.o)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(TSAN_FLAGS) $(PKG_CFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS) -lcmocka

build/tsan/cairn: $(LIB_SRC:%.c=build/tsan/%.o) $(CLI_SRC:%.c=build/tsan/%.o)
	$(CC) $(CFLAGS) $(TSAN_FLAGS) -o $@ $^ $(LDLIBS)

# cairn built with sanitizers, used by the integration tests under asan
build/asan/cairn: $(LIB_SRC:%.c=build/asan/%.o) $(CLI_SRC:%.c=build/asan/%.o)
	$(CC) $(CFLAGS) $(ASAN_FLAGS) -o $@ $^ $(LDLIBS)

$(DEPS_STAMP):
	@$(MAKE) --no-print-directory deps

deps:
	@missing=""; for p in $(APT_BUILD) $(APT_RUN); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
		else \
			echo "missing packages; run as root: apt-get install$$missing"; exit 1; \
		fi; \
	fi; \
	if [ ! -d $(TEST_NODE)/node_modules/puppeteer-core ] && [ "$$(id -u)" = 0 ]; then \
		command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null || exit 1; \
		npm install --silent --no-audit --no-fund --prefix $(TEST_NODE) $(PUPPETEER) || exit 1; \
	fi; touch $(DEPS_STAMP)

bench-deps:
	@missing=""; for p in $(APT_BENCH); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
		else echo "missing packages; run as root: apt-get install$$missing"; exit 1; fi; \
	fi

unit: $(UNIT_BIN)
	@for t in $(UNIT_BIN); do echo "== $$t"; $$t || exit 1; done

asan: $(ASAN_BIN) build/asan/cairn
	@for t in $(ASAN_BIN); do echo "== asan $$t"; $$t || exit 1; done

# the integration tests run cairn through a wrapper that sets up TSan
build/tsan/cairn.sh: build/tsan/cairn
	printf '#!/bin/sh\nexec %s %s "$$@"\n' '$(TSAN_RUN)' '$(CURDIR)/build/tsan/cairn' >$@
	chmod +x $@

tsan: $(TSAN_BIN) build/tsan/cairn.sh $(PLUGIN)
	@for t in $(TSAN_BIN); do echo "== tsan $$t"; $(TSAN_RUN) $$t || exit 1; done
	CAIRN=$(CURDIR)/build/tsan/cairn.sh tests/integration/run.sh $(TSAN_IT)

# Fuzz targets (tests/fuzz/, one per parser of untrusted bytes): clang's
# libFuzzer with ASan/UBSan. Seeds are generated from repositories this
# cairn makes (tests/fuzz/gen_corpus.sh) plus the hand-written ones and
# the regression inputs in tests/fuzz/corpus/. `make fuzz` runs each
# target FUZZ_SECONDS, one at a time; fuzz-check (part of `make check`)
# runs each over its corpus and then a short fixed-seed run.
FUZZ_CC := clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_NAMES := $(filter-out fuzz_helpers gen_seeds,$(basename $(notdir $(wildcard tests/fuzz/*.c))))
FUZZ_BIN := $(FUZZ_NAMES:%=build/fuzz/%)
FUZZ_OBJ := $(LIB_SRC:%.c=build/fuzz/obj/%.o) build/fuzz/obj/tests/fuzz/fuzz_helpers.o
FUZZ_CORPUS := build/fuzz/corpus/.done
$(FUZZ_BIN): $(FUZZ_OBJ) # kept between builds (not intermediate)
FUZZ_RUN := ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
# a hostile object must not make a reader allocate more than this
FUZZ_OPTS := -timeout=10 -rss_limit_mb=2048

build/fuzz/obj/%.o: %.c $(HEADERS) tests/fuzz/fuzz_helpers.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link $(PKG_CFLAGS) -c -o $@ $<

build/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz_helpers.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(CFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer $(PKG_CFLAGS) -o $@ $< $(FUZZ_OBJ) $(LDLIBS)

# the seeds that are not whole objects, cut from a repository (ordinary build)
build/fuzz/gen_seeds: tests/fuzz/gen_seeds.c $(LIB_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PKG_CFLAGS) -o $@ $^ $(LDLIBS)

$(FUZZ_CORPUS): cairn build/fuzz/gen_seeds tests/fuzz/gen_corpus.sh $(wildcard tests/fuzz/corpus/*/*)
	rm -rf build/fuzz/corpus
	tests/fuzz/gen_corpus.sh $(CURDIR)/cairn $(CURDIR)/build/fuzz/gen_seeds build/fuzz/corpus
	touch $@

# the corpus first (every seed and regression input once), then a short
# run from a fixed seed; new finds go to build/fuzz/check/, not the corpus
fuzz-check: $(FUZZ_BIN) $(FUZZ_CORPUS)
	@for t in $(FUZZ_NAMES); do echo "== fuzz $$t"; rm -rf build/fuzz/check/$$t; \
		mkdir -p build/fuzz/check/$$t; \
		$(FUZZ_RUN) build/fuzz/$$t $(FUZZ_OPTS) -artifact_prefix=build/fuzz/check/$$t- -runs=0 \
			build/fuzz/corpus/$$t >build/fuzz/$$t.log 2>&1 && \
		$(FUZZ_RUN) build/fuzz/$$t $(FUZZ_OPTS) -artifact_prefix=build/fuzz/check/$$t- -runs=2000 \
			-seed=1 build/fuzz/check/$$t build/fuzz/corpus/$$t >>build/fuzz/$$t.log 2>&1 || \
		{ tail -n 40 build/fuzz/$$t.log; exit 1; }; \
	done

fuzz: $(FUZZ_BIN) $(FUZZ_CORPUS)
	@mkdir -p build/fuzz/crashes
	@fail=0; for t in $(FUZZ_NAMES); do echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; \
		mkdir -p build/fuzz/found/$$t; rm -f build/fuzz/crashes/$$t-*; \
		$(FUZZ_RUN) build/fuzz/$$t $(FUZZ_OPTS) -max_total_time=$(FUZZ_SECONDS) \
			-artifact_prefix=build/fuzz/crashes/$$t- -print_final_stats=1 \
			build/fuzz/found/$$t build/fuzz/corpus/$$t >build/fuzz/$$t.log 2>&1; \
		grep -E '^#[0-9]+.*(DONE|INITED)|^stat::number_of_executed_units|^SUMMARY' build/fuzz/$$t.log; \
		if ls build/fuzz/crashes | grep -q "^$$t-"; then \
			echo "$$t: found a failure, see build/fuzz/crashes/ and build/fuzz/$$t.log"; fail=1; fi; \
	done; exit $$fail

# the delaying TCP proxy of the WAN tests and benchmark (no dependencies)
WANPROXY := build/wanproxy
$(WANPROXY): tests/tools/wanproxy.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $<

integration: cairn $(PLUGIN) $(WANPROXY)
	CAIRN=$(CURDIR)/cairn tests/integration/run.sh

# the house plan: no module includes one above it, no call circle in repo/
layers: all
	tests/include_layers.sh
	tests/repo_layers.sh

check: $(DEPS_STAMP)
	$(MAKE) all
	$(MAKE) layers
	$(MAKE) unit
	$(MAKE) asan
	$(MAKE) tsan
	$(MAKE) fuzz-check
	$(MAKE) integration
	CAIRN=$(CURDIR)/build/asan/cairn ASAN_OPTIONS=detect_leaks=1 tests/integration/run.sh t_roundtrip_raw t_encryption t_corruption t_check t_multidisk t_forget t_gc t_replicate_rechunk t_sftp t_mutate

demo: $(DEPS_STAMP)
	$(MAKE) all
	tests/demo.sh $(CURDIR)/cairn
	tests/demo-vm.sh $(CURDIR)/cairn

bench: $(DEPS_STAMP) bench-deps
	$(MAKE) cairn $(PLUGIN) $(WANPROXY)
	tests/bench/run.sh $(CURDIR)/cairn docs/benchmarks.md

install: cairn $(PLUGIN)
	install -D -m 0755 cairn $(DESTDIR)$(PREFIX)/bin/cairn
	install -D -m 0755 $(PLUGIN) $(DESTDIR)$(PREFIX)/lib/cairn/nbdkit-cairn-plugin.so
	install -D -m 0644 docs/cairn.1 $(DESTDIR)$(PREFIX)/share/man/man1/cairn.1
	install -D -m 0644 docs/cairn.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/cairn.conf.5
	install -D -m 0644 docs/cairn.conf.example $(DESTDIR)/etc/cairn/cairn.conf.example
	install -d $(DESTDIR)$(PREFIX)/share/cairn/www
	install -m 0644 daemon/www/index.html daemon/www/app.js daemon/www/style.css \
		$(DESTDIR)$(PREFIX)/share/cairn/www/
	mkdir -p $(DESTDIR)/lib/systemd/system
	sed 's|/usr/local/bin/cairn|$(PREFIX)/bin/cairn|' docs/cairn-agent.service \
		>$(DESTDIR)/lib/systemd/system/cairn-agent.service

clean:
	rm -rf build cairn $(DEPS_STAMP)
