# vmback: the two commands the README starts with, and a few more.
#   make demo    install deps, build, make a small VM (two disks), back it up full and
#                incrementally, restore it, check the bytes
#   make check   install deps, build, run unit + end-to-end tests
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all deps build build-asan check check-unit check-e2e check-asan demo bench fuzz reliability-fuzz reliability install clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

check: build
	@tests/run-all.sh $(BUILD)

# vmback in $(PREFIX)/bin (default /usr/local), its driver modules and
# nbdkit plugins in $(PREFIX)/lib/<arch>/vmback; DESTDIR stages it
install: build
	$(if $(PREFIX),meson configure $(BUILD) -Dprefix=$(PREFIX))
	meson install -C $(BUILD) $(if $(DESTDIR),--destdir $(DESTDIR))

build-asan: deps
	@VMBACK_DEPS_EXTRA=clang scripts/install-deps
	[ -f $(ASAN_BUILD)/build.ninja ] || CC=clang meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
	meson configure $(ASAN_BUILD) -Dfuzz=true   # libFuzzer targets: tests/e2e/390-fuzz-smoke.sh
	ninja -C $(ASAN_BUILD)

check-asan: build-asan
	@VMBACK_TEST_QUICK=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  tests/run-all.sh $(ASAN_BUILD)

demo: build
	@scripts/demo.sh $(BUILD)

bench: build
	@bench/bench-convert.sh $(BUILD)

# every fuzz target for FUZZ_SECONDS (default 60) each, one after the other
fuzz: deps
	@VMBACK_DEPS_EXTRA=clang scripts/install-deps
	@fuzz/run.sh $${FUZZ_SECONDS:-60} $(FUZZ_TARGETS)

# every fuzz target for 10 minutes, then a table: target | executions | crashes
reliability-fuzz: deps
	@VMBACK_DEPS_EXTRA=clang scripts/install-deps
	@fuzz/run.sh --reliability $(FUZZ_TARGETS)

# fuzzing (FUZZ_SECONDS, default 600 per target), the fault campaign
# (FAULTS, default 200), the concurrency scenarios and the hostile-input
# test, then one table of what was measured (tests/reliability/report.sh)
reliability: build
	@VMBACK_DEPS_EXTRA=clang scripts/install-deps
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-600} tests/reliability/report.sh --build $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
