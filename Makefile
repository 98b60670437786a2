# offload -- nginx module + sidecar supervisor, over Redis Streams.
#
#   make run      install what is missing, build, start redis + sidecar + nginx
#   make test     install what is missing, build, run every test (t/, prove)
#   make bench    throughput and latency against nginx `return 200`
#   make deb      Debian packages of debian/ into build/deb/ (t/99-deb.t)
#   make fuzz     build the libFuzzer harnesses (t/fuzz/) and run each for
#                 FUZZ_SECONDS (default 60)
#
# SANITIZE=1 builds the module and the sidecar with ASan + UBSan into
# build/asan and runs the same suite on that build.

SHELL := /bin/bash
comma := ,
space := $(subst ,, )

NGX_SRC ?= /usr/share/nginx/src

# Debian's hardening (what `DEB_BUILD_MAINT_OPTIONS=hardening=+all
# dpkg-buildflags` gives on bookworm): stack protector, FORTIFY_SOURCE,
# PIE, full RELRO with BIND_NOW; plus stack clash protection and, on x86,
# control-flow protection (CET), which bookworm's `hardening-check` also
# wants and trixie's dpkg-buildflags adds.  `hardening-check` passes on the
# binaries and the module (t/96-hardening.t).  The ASan build leaves
# FORTIFY_SOURCE out: ASan checks every access itself and its interceptors
# replace the _chk functions.
CF_PROTECTION = $(if $(filter x86_64 i%86,$(shell uname -m)),-fcf-protection)
HARDEN_CFLAGS = -fstack-protector-strong -fstack-clash-protection \
                $(CF_PROTECTION) -Wformat -Werror=format-security
HARDEN_LDFLAGS = -Wl,-z,relro -Wl,-z,now
FORTIFY = -D_FORTIFY_SOURCE=2

ifeq ($(SANITIZE),1)
BUILD ?= build/asan
SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
OPT ?= -O1
FORTIFY =
else
BUILD ?= build
SAN_FLAGS =
OPT ?= -O2
endif

# CFLAGS, CPPFLAGS, LDFLAGS and LDLIBS are the user's (make CFLAGS=-O0, or
# what dpkg-buildpackage exports): the project's own flags, which the code
# needs (-std, -D_GNU_SOURCE, the include folders), the quality bar (-Werror)
# and the hardening, are in OFFLOAD_* and always added before them.
# FORTIFY_SOURCE wants an optimising build (without one glibc warns, which
# -Werror makes an error), so a user's -O0 leaves it out.
CFLAGS ?= -g $(OPT)
WARN = -Wall -Wextra -Werror
CC_FORTIFY = $(if $(filter-out -O0,$(lastword $(filter -O%,$(CFLAGS)))), \
                $(FORTIFY))

# hiredis, jansson and libcrypto ship .pc files (libev does not); without
# pkg-config, the plain -l names.  libcrypto's headers only: the sha256
# handler loads it on its first job (dlopen), so that no other process of
# the sidecar pays the loader's work on it.
PKG_CONFIG ?= pkg-config
PKGS = hiredis jansson
PKG_CPPFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) libcrypto 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null \
              || echo -lhiredis -ljansson)
CURSES_LIBS := $(shell $(PKG_CONFIG) --libs ncurses 2>/dev/null \
                 || echo -lncurses)

# -MMD -MP: each object's header dependencies, in a .d file beside it.
SIDECAR_INCS = $(addprefix -Isidecar/,core handlers worker supervisor ctl \
                 include)
OFFLOAD_CPPFLAGS = -Iproto $(SIDECAR_INCS) -D_GNU_SOURCE \
                   $(CC_FORTIFY) $(PKG_CPPFLAGS)
OFFLOAD_CFLAGS = -std=gnu99 $(WARN) $(SAN_FLAGS) $(HARDEN_CFLAGS) -fPIE \
                 -MMD -MP
OFFLOAD_LDFLAGS = $(SAN_FLAGS) $(HARDEN_LDFLAGS) -pie
OFFLOAD_LDLIBS = -lev $(PKG_LIBS) -lm
COMPILE = $(CC) $(OFFLOAD_CPPFLAGS) $(CPPFLAGS) $(OFFLOAD_CFLAGS) $(CFLAGS)
LINK = $(OFFLOAD_LDFLAGS) $(LDFLAGS)
# Plugins (load_module) call offload.h's functions in the program that
# loads them: those, and only those, are exported.
API = offload_job_id offload_job_request_id offload_job_traceparent \
      offload_job_tracestate offload_job_attempt offload_job_ran_before \
      offload_job_deadline offload_job_result offload_job_fail \
      offload_job_retry offload_metric_count offload_metric_observe \
      offload_slot_queue offload_slot_index offload_log_info \
      offload_log_warn offload_log_error
# (--undefined: linked in from the static libraries even when nothing of
# the program's own calls them)
EXPORT_API = $(addprefix -Wl$(comma)--export-dynamic-symbol=,$(API)) \
             $(addprefix -Wl$(comma)--undefined=,$(API))

# Debian packages the build, the tests and the benchmark need; the tests
# also scrape with a real Prometheus and load the dashboard in Chromium; mandoc
# and man-db check the man pages (docs/man/).
DEB_PKGS = nginx nginx-dev libhiredis-dev libjansson-dev libev-dev libssl-dev \
           redis-server redis-tools gcc make pkg-config perl wrk valgrind \
           curl libncurses-dev
# The fuzz harnesses need clang and its libFuzzer runtime (only recommended
# by clang, so named here).
FUZZ_PKGS = clang libclang-rt-14-dev
# make deb builds the Debian packages with debhelper (and nginx-dev's
# dh_nginx) through dpkg-buildpackage, and checks them with lintian.
PKG_PKGS = debhelper dpkg-dev lintian
TEST_PKGS = prometheus chromium tmux devscripts iproute2 python3-redis strace \
            python3 nodejs mandoc man-db openssl faketime \
            $(FUZZ_PKGS) $(PKG_PKGS)

# The sidecar's folders, one archive each, so that a program links of
# each only the objects it uses:
#   sidecar/core/        config, log, Redis link, scoreboard, and what
#                        both worker and supervisor do to a job (retry,
#                        bad entry, error answer), with proto/: shared by all
#   sidecar/handlers/    the handler API, the built-in and exec handlers
#   sidecar/worker/      a worker process
#   sidecar/supervisor/  the supervisor (main.c), its pools, claims,
#                        reclaims, retry rounds, stats and events
#   sidecar/ctl/         offloadctl, which links core and handlers only
#
# The folders make a stack, each using only those below it:
#   supervisor -> worker -> handlers -> core -> proto/, sidecar/include/
#   ctl -> handlers
#   client (liboffload) -> core's redis_endpoint.c, sentinel_sync.c and
#                          cluster_map.c and redis_ask.c
# A folder's files are compiled with the -I of their own folder and of
# those below it, so that an #include from a folder above fails to
# compile.  The tests, the fuzzers and the benchmarks see every folder.
INCS_core = -Isidecar/core -Isidecar/include
INCS_handlers = -Isidecar/handlers $(INCS_core)
INCS_worker = -Isidecar/worker $(INCS_handlers)
INCS_supervisor = -Isidecar/supervisor $(INCS_worker)
$(BUILD)/obj/proto/%.o: SIDECAR_INCS =
$(BUILD)/obj/sidecar/client/%.o: SIDECAR_INCS = $(INCS_core)
$(BUILD)/obj/sidecar/core/%.o: SIDECAR_INCS = $(INCS_core)
$(BUILD)/obj/sidecar/handlers/%.o: SIDECAR_INCS = $(INCS_handlers)
$(BUILD)/obj/sidecar/worker/%.o: SIDECAR_INCS = $(INCS_worker)
$(BUILD)/obj/sidecar/supervisor/%.o: SIDECAR_INCS = $(INCS_supervisor)
$(BUILD)/obj/sidecar/ctl/%.o: SIDECAR_INCS = -Isidecar/ctl $(INCS_handlers)

PROTO_SRCS = $(wildcard proto/*.c)
objs_of = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
SIDECAR_MAIN = $(BUILD)/obj/sidecar/supervisor/main.o
CTL_OBJS = $(call objs_of,$(wildcard sidecar/ctl/*.c))
CORE_LIB = $(BUILD)/lib/libcore.a
HANDLERS_LIB = $(BUILD)/lib/libhandlers.a
WORKER_LIB = $(BUILD)/lib/libworker.a
SUPERVISOR_LIB = $(BUILD)/lib/libsupervisor.a
SIDECAR_LIBS = $(SUPERVISOR_LIB) $(WORKER_LIB) $(HANDLERS_LIB) $(CORE_LIB)
LIB_OBJS = $(call objs_of,$(PROTO_SRCS) $(wildcard sidecar/core/*.c \
             sidecar/handlers/*.c sidecar/worker/*.c sidecar/supervisor/*.c))
UNIT_TESTS = $(patsubst t/unit/%.c,$(BUILD)/unit/%,$(wildcard t/unit/*.c))

MODULE = $(BUILD)/ngx_http_offload_module.so

# liboffload: the C client library (sidecar/include/offload_client.h) for
# programs that submit jobs themselves, with the protocol code it needs
# and core's parsing of a Sentinel address and asking sentinels (and of a
# cluster address: the key slot of its control keys).
CLIENT_SRCS = sidecar/client/offload_client.c proto/offload_proto.c \
              proto/offload_json_check.c proto/offload_slot.c \
              proto/offload_redis_time.c \
              sidecar/core/redis_endpoint.c sidecar/core/sentinel_sync.c \
              sidecar/core/cluster_map.c sidecar/core/redis_ask.c
CLIENT_LIB = $(BUILD)/liboffload.a

.PHONY: all deps module run test unit bench clean fuzzers fuzz install \
        uninstall deb

# The examples (examples/c/, docs/HANDLERS.md), built as their authors
# would: a plugin against offload.h alone, a program that submits jobs
# against offload_client.h and liboffload.
EXAMPLE = $(BUILD)/examples/offload_example.so \
          $(BUILD)/examples/submit_example
PLUGIN_CFLAGS = -std=gnu99 -g -O2 $(WARN) $(SAN_FLAGS) $(HARDEN_CFLAGS) \
                $(FORTIFY) -fPIC -shared -Isidecar/include

all: $(MODULE) $(BUILD)/offload-sidecar $(BUILD)/offloadctl $(UNIT_TESTS) \
     $(EXAMPLE) $(CLIENT_LIB) $(BUILD)/client_test $(BUILD)/submit-bench \
     $(BUILD)/line_client \
     $(BUILD)/longpoll-bench $(BUILD)/rate-bench

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	        | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y -qq --no-install-recommends $$missing \
	        >/dev/null; \
	else \
	    echo "missing Debian packages; run:"; \
	    echo "  sudo apt-get install" $$missing; \
	    exit 1; \
	fi

# The module: configured once from Debian's nginx-dev with Debian's own
# configure flags (so the signature matches /usr/sbin/nginx), then rebuilt
# by nginx's make, which tracks the module's sources itself.
$(BUILD)/nginx/Makefile: config config.make Makefile
	@mkdir -p $(BUILD)/nginx
	cd $(NGX_SRC) && . ./conf_flags && ./configure "$${NGX_CONF_FLAGS[@]}" \
	    --with-cc-opt="-fPIC $(WARN) -Wno-unused-parameter $(SAN_FLAGS) \
	        $(HARDEN_CFLAGS) $(FORTIFY)" \
	    --with-ld-opt="$(SAN_FLAGS) $(HARDEN_LDFLAGS)" \
	    --add-dynamic-module=$(CURDIR) \
	    --builddir=$(CURDIR)/$(BUILD)/nginx >$(CURDIR)/$(BUILD)/nginx/configure.log

# The copy goes through a new inode (cp + mv): overwriting the .so in place
# would change the code under every running nginx that loaded it.
module: $(BUILD)/nginx/Makefile
	$(MAKE) -s -f $(CURDIR)/$(BUILD)/nginx/Makefile -C $(NGX_SRC) modules
	cp -p $(BUILD)/nginx/ngx_http_offload_module.so $(MODULE).tmp
	mv -f $(MODULE).tmp $(MODULE)

$(MODULE): module

$(BUILD)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(COMPILE) -c $< -o $@

$(CORE_LIB): $(call objs_of,$(PROTO_SRCS) $(wildcard sidecar/core/*.c))
$(HANDLERS_LIB): $(call objs_of,$(wildcard sidecar/handlers/*.c))
$(WORKER_LIB): $(call objs_of,$(wildcard sidecar/worker/*.c))
$(SUPERVISOR_LIB): $(filter-out $(SIDECAR_MAIN), \
                     $(call objs_of,$(wildcard sidecar/supervisor/*.c)))
$(BUILD)/lib/%.a:
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

# The archives in their order in the stack: each calls only those after it.
$(BUILD)/offload-sidecar: $(SIDECAR_MAIN) $(SIDECAR_LIBS)
	$(CC) $(CFLAGS) $(LINK) $(EXPORT_API) $< $(SIDECAR_LIBS) -o $@ \
	    $(OFFLOAD_LDLIBS) $(LDLIBS)

# offloadctl replay runs a handler in place: core and handlers.
$(BUILD)/offloadctl: $(CTL_OBJS) $(HANDLERS_LIB) $(CORE_LIB) $(CLIENT_LIB)
	$(CC) $(CFLAGS) $(LINK) $(EXPORT_API) $^ -o $@ $(OFFLOAD_LDLIBS) \
	    $(CURSES_LIBS) $(LDLIBS)

$(BUILD)/examples/%.so: examples/c/%.c sidecar/include/offload.h Makefile
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) $(HARDEN_LDFLAGS) $< -o $@ -ljansson

$(BUILD)/examples/submit_example: examples/c/submit_example.c $(CLIENT_LIB)
	@mkdir -p $(dir $@)
	$(COMPILE) $(LINK) $< $(CLIENT_LIB) -o $@ $(PKG_LIBS) $(LDLIBS)

$(CLIENT_LIB): $(patsubst %.c,$(BUILD)/obj/%.o,$(CLIENT_SRCS))
	rm -f $@
	$(AR) rcs $@ $^

# The client library's test against a live stack (t/46-submit.t runs it)
# and the submit round-trip benchmark (bench/run): programs of a user's,
# linked with the library and hiredis only.
$(BUILD)/client_test: t/client/client_test.c $(CLIENT_LIB)
	$(COMPILE) -It/unit $(LINK) $< $(CLIENT_LIB) -o $@ $(PKG_LIBS) $(LDLIBS)

# one client driven line by line across failovers and slot moves
# (t/46-submit-sentinel.t, t/37-cluster-client.t)
$(BUILD)/line_client: t/client/line_client.c $(CLIENT_LIB)
	$(COMPILE) $(LINK) $< $(CLIENT_LIB) -o $@ $(PKG_LIBS) $(LDLIBS)

$(BUILD)/submit-bench: bench/submit_bench.c $(CLIENT_LIB)
	$(COMPILE) $(LINK) $< $(CLIENT_LIB) -o $@ $(PKG_LIBS) -lm $(LDLIBS)

# bench/run's parked long polls and fixed-rate latency: plain sockets
$(BUILD)/longpoll-bench: bench/longpoll_bench.c
	$(COMPILE) $(LINK) $< -o $@

$(BUILD)/rate-bench: bench/rate_bench.c
	$(COMPILE) $(LINK) $< -o $@

# A unit test links, from the archives, the objects it uses.
$(BUILD)/unit/%: t/unit/%.c $(SIDECAR_LIBS)
	@mkdir -p $(dir $@)
	$(COMPILE) -It/unit $(LINK) $(EXPORT_API) $< $(SIDECAR_LIBS) -o $@ \
	    $(OFFLOAD_LDLIBS) $(LDLIBS)

# The header dependencies -MMD wrote (none before the first build).
DEP_FILES = $(patsubst %.o,%.d,$(LIB_OBJS) $(SIDECAR_MAIN) $(CTL_OBJS) \
              $(call objs_of,$(CLIENT_SRCS))) \
            $(addsuffix .d,$(UNIT_TESTS) $(BUILD)/client_test \
              $(BUILD)/line_client \
              $(BUILD)/submit-bench $(BUILD)/examples/submit_example \
              $(BUILD)/longpoll-bench $(BUILD)/rate-bench)
-include $(DEP_FILES)

unit: $(UNIT_TESTS)

run: deps all
	PORT=$(or $(PORT),8080) BUILD=$(CURDIR)/$(BUILD) conf/run

# libFuzzer harnesses (t/fuzz/<name>.c), with ASan and UBSan, over the code
# they fuzz compiled with clang's coverage.  `make fuzz` runs each for
# FUZZ_SECONDS on its seeds (t/fuzz/corpus/<name>) and its regression inputs
# (t/fuzz/regress/<name>); what it finds new goes to $(FUZZ)/corpus/<name>,
# crashes to $(FUZZ)/artifacts/.  t/96-fuzz.t runs each briefly.
FUZZ = $(BUILD)/fuzz
FUZZ_SECONDS ?= 60
FUZZ_CC = clang
FUZZ_CFLAGS = -std=gnu99 -g -O1 $(WARN) -fno-omit-frame-pointer -MMD -MP \
              -fsanitize=address,undefined -fno-sanitize-recover=undefined \
              -Iproto $(SIDECAR_INCS) -D_GNU_SOURCE
FUZZ_NAMES = $(patsubst t/fuzz/%.c,%,$(wildcard t/fuzz/*.c))
FUZZERS = $(addprefix $(FUZZ)/,$(FUZZ_NAMES))
FUZZ_LIB_SRCS = $(PROTO_SRCS) sidecar/core/conf.c sidecar/core/log.c \
                sidecar/core/redis_endpoint.c sidecar/core/shm.c
FUZZ_OBJS = $(patsubst %.c,$(FUZZ)/obj/%.o,$(FUZZ_LIB_SRCS))

$(FUZZ)/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ)/%: t/fuzz/%.c $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJS) -o $@ \
	    $(PKG_LIBS) -lcrypto -lm

# Kept between builds: they are made by a pattern rule only.
.SECONDARY: $(FUZZ_OBJS)
-include $(FUZZ_OBJS:.o=.d) $(FUZZERS:=.d)

fuzzers: $(FUZZERS)

fuzz: DEB_PKGS += $(FUZZ_PKGS)
fuzz: deps
	$(MAKE) fuzzers
	@for f in $(FUZZ_NAMES); do \
	    mkdir -p $(FUZZ)/corpus/$$f $(FUZZ)/artifacts; \
	    dict=; [ -f t/fuzz/$$f.dict ] && dict=-dict=t/fuzz/$$f.dict; \
	    regress=; [ -d t/fuzz/regress/$$f ] && regress=t/fuzz/regress/$$f; \
	    echo "fuzz: $$f for $(FUZZ_SECONDS) s"; \
	    nice -n 19 $(FUZZ)/$$f -max_total_time=$(FUZZ_SECONDS) \
	        -print_final_stats=1 $$dict \
	        -artifact_prefix=$(FUZZ)/artifacts/$$f- \
	        $(FUZZ)/corpus/$$f t/fuzz/corpus/$$f $$regress \
	        2>$(FUZZ)/$$f.log || { tail -40 $(FUZZ)/$$f.log; exit 1; }; \
	    grep -E '^(Done|stat::number_of_executed_units)' $(FUZZ)/$$f.log; \
	done

# The tests run in three chains at once, each one file at a time, each
# file's time shown: the main chain (every file not named below, in name
# order) and two side chains, in the order given.  The side chains hold
# the tests that mostly wait, on timers of Redis or of our own: the soak
# t/95-chaos.t, the Redis Cluster tests (each spends 2 s of its 3 s in
# Redis's fixed delay before a new cluster says ok), the Sentinel tests
# (down-after and failover timeouts), backoffs, stop deadlines, long
# polls parked on sleeping jobs, Redis' own faults waited out, processes
# killed and waited for; and t/99-deb.t, where make deb builds the whole
# tree again (a minute, most of it CPU).  Together they take about 700 s
# of the suite's 1,150, the whole suite under 40% of the two cores it
# was measured on: the three chains about as long as each other.  The
# latencies they check leave at least 0.8 s to spare (an "at once" under
# 0.8 s or 1 s in t/51-async-wait and t/51-admission, t/67-shutdown's
# 1 s stop seen within 2.4 s); the tests with tighter ones stay in the
# main chain (t/37-cluster, -client, -async, -unmapped, those racing
# nginx's subscriptions, -ask, -ask-noscript, and the timing checks of
# t/20-errors, t/51-async, t/52-idempotency, t/62-restart-intensity).
# Every test starts its own processes on loopback ports picked at run
# time.  With the sanitizers (no package built, every process several
# times slower, the soak a busy one) all run one at a time, in name
# order.
SIDE_A = 95-chaos 99-deb 37-cluster-acl 37-cluster-failover \
         37-cluster-hostname 37-cluster-ipv6 37-cluster-sidecar \
         37-cluster-noauth 37-cluster-stale-seed 37-cluster-topology \
         37-cluster-unknown-endpoint 37-cluster-wait \
         32-sentinel 32-sentinel-auth 32-sentinel-long-jobs \
         32-sentinel-resync 32-sentinel-stale 32-sentinel-unheard \
         32-sentinel-watch 34-sentinel-sidecar 36-sentinel-failover \
         51-admission 67-shutdown 31-redis-silent 33-sharded \
         31-sidecar-hostile
SIDE_B = 46-submit-sentinel 30-redis-refused 68-stop-deadline \
         52-long-polls-parked 52-long-polls-tls 30-redis-down \
         55-reload-polls 61-retries 71-stream-lost 72-redis-refuses \
         83-status-malformed 51-async-wait 30-redis-noauth \
         84-in-flight-killed 72-redis-replica 52-long-polls \
         52-cancel-running 84-prometheus 66-cooldown-reclaim \
         46-submit-lost 68-stop-crash 68-reload-pending 69-node-lost \
         31-redis-hostile 97-make-run 83-status 34-multi-node \
         64-handler-children 85-offloadctl 86-dashboard 82-health \
         34-role-refused 11-plugins-hostile 62-pool-failed-503
side_glob = t/{$(subst $(space),$(comma),$(strip $(1)))}.t
SIDE_FILES = $(patsubst %,t/%.t,$(SIDE_A) $(SIDE_B))
PROVE_CHAINS = $(if $(SANITIZE),,-j3 \
               --rules='seq=$(call side_glob,$(SIDE_A))' \
               --rules='seq=$(call side_glob,$(SIDE_B))' --rules='seq=**')
# the side chains' files last, in their order (prove's seq runs a glob's
# files in the order they are given)
TEST_FILES = $(if $(SANITIZE),t/*.t, \
             $(filter-out $(SIDE_FILES),$(sort $(wildcard t/*.t))) \
             $(SIDE_FILES))

test: DEB_PKGS += $(TEST_PKGS)
test: deps all fuzzers
	OFFLOAD_BUILD=$(CURDIR)/$(BUILD) OFFLOAD_SANITIZE=$(SANITIZE) \
	    prove --timer $(PROVE_CHAINS) $(UNIT_TESTS) $(TEST_FILES)

bench: deps all
	BUILD=$(CURDIR)/$(BUILD) bench/run

# make install [DESTDIR=...] [PREFIX=/usr/local]: the programs, the module
# and the snippet that loads it (Debian's layout: enable it with a link in
# /etc/nginx/modules-enabled/), the public headers and liboffload, the
# systemd unit (its paths made PREFIX's), the logrotate file, the man pages
# of docs/man/ and an example /etc/offload/sidecar.conf (SYSCONFDIR), which
# never replaces one already there.  make uninstall removes exactly these
# files, the example config only while it is still the example.
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
BINDIR = $(PREFIX)/bin
INCLUDEDIR = $(PREFIX)/include
LIBDIR = $(PREFIX)/lib
MANDIR ?= $(PREFIX)/share/man
NGX_MODULES_DIR ?= $(PREFIX)/lib/nginx/modules
NGX_SNIPPETS_DIR ?= $(PREFIX)/share/nginx/modules-available
UNIT_DIR ?= $(PREFIX)/lib/systemd/system
# docs/man/<name>.<section> goes to MANDIR/man<section>/<name>.<section>
MAN_PAGES = $(wildcard docs/man/*.[1-9])
man_path = $(MANDIR)/man$(patsubst .%,%,$(suffix $(1)))/$(notdir $(1))
CONF_EXAMPLE = $(SYSCONFDIR)/offload/sidecar.conf
INSTALLED = $(BINDIR)/offload-sidecar $(BINDIR)/offloadctl \
            $(NGX_MODULES_DIR)/ngx_http_offload_module.so \
            $(NGX_SNIPPETS_DIR)/mod-http-offload.conf \
            $(INCLUDEDIR)/offload.h $(INCLUDEDIR)/offload_client.h \
            $(LIBDIR)/liboffload.a $(UNIT_DIR)/offload-sidecar.service \
            $(SYSCONFDIR)/logrotate.d/offload-sidecar \
            $(foreach m,$(MAN_PAGES),$(call man_path,$(m)))

install: $(MODULE) $(BUILD)/offload-sidecar $(BUILD)/offloadctl \
         $(CLIENT_LIB)
	install -d $(addprefix $(DESTDIR),$(sort $(dir $(INSTALLED) \
	    $(CONF_EXAMPLE))))
	install -m 0755 $(BUILD)/offload-sidecar $(BUILD)/offloadctl \
	    $(DESTDIR)$(BINDIR)/
	install -m 0644 $(MODULE) $(DESTDIR)$(NGX_MODULES_DIR)/
	echo "load_module $(NGX_MODULES_DIR)/ngx_http_offload_module.so;" \
	    >$(DESTDIR)$(NGX_SNIPPETS_DIR)/mod-http-offload.conf
	install -m 0644 sidecar/include/offload.h \
	    sidecar/include/offload_client.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 0644 $(CLIENT_LIB) $(DESTDIR)$(LIBDIR)/
	sed 's|/usr/local/bin/|$(BINDIR)/|g' conf/offload-sidecar.service \
	    >$(DESTDIR)$(UNIT_DIR)/offload-sidecar.service
	install -m 0644 conf/offload-sidecar.logrotate \
	    $(DESTDIR)$(SYSCONFDIR)/logrotate.d/offload-sidecar
	$(foreach m,$(MAN_PAGES),install -m 0644 $(m) \
	    $(DESTDIR)$(call man_path,$(m)) &&) true
	[ -e $(DESTDIR)$(CONF_EXAMPLE) ] || install -m 0644 \
	    conf/offload-sidecar.conf $(DESTDIR)$(CONF_EXAMPLE)

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	! cmp -s conf/offload-sidecar.conf $(DESTDIR)$(CONF_EXAMPLE) \
	    || rm -f $(DESTDIR)$(CONF_EXAMPLE)

# make deb: the Debian packages of debian/ (libnginx-mod-http-offload,
# offload-sidecar, liboffload-dev), built by dpkg-buildpackage from a copy
# of the tree in $(DEB_DIR)/src: it writes the packages to the parent
# folder, $(DEB_DIR), not to the checkout's.  The build is the package's
# own (debian/rules runs make all and make install), whatever this make
# was given.  lintian must find no error in them.  They are built again
# only when a file of the tree changed (but a test script, t/*.t), or a
# folder (a file added or removed).  The names are absolute: make takes
# ./bench for the phony target bench.
DEB_DIR = build/deb
DEB_SRCS = $(shell find $(CURDIR) -path $(CURDIR)/build -prune \
             -o -path $(CURDIR)/.git -prune \
             -o \( -type d -o -type f ! -name '*.t' \) -print)

deb: DEB_PKGS += $(PKG_PKGS)
deb: $(DEB_DIR)/.built

$(DEB_DIR)/.built: $(DEB_SRCS) | deps
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	tar -c --exclude=./build --exclude=./.git . | tar -x -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
	    dpkg-buildpackage -b -us -uc -J >../build.log 2>&1 \
	    || { tail -40 ../build.log; exit 1; }
	lintian --fail-on error $(DEB_DIR)/*.changes
	ls -l $(DEB_DIR)/*.deb
	touch $@

clean:
	rm -rf build
