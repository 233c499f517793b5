# outboxd: `make` builds, `make run` starts a local demo, `make test` runs every test against a
# throw-away PostgreSQL. Each target installs the Debian packages it needs first.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps build run test unit integration ops-test sanitize asan tsan fuzz bench soak clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

run: build
	@scripts/run-demo.sh

test: build
	@scripts/run-tests.sh $(BUILD)

# ASan+UBSan, then TSan, each over the whole suite (the daemons the tests start are sanitized too).
sanitize:
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory tsan

asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DOUTBOXD_SANITIZE=address,undefined >/dev/null
	@cmake --build build-asan -j$(JOBS)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 scripts/run-tests.sh build-asan

tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DOUTBOXD_SANITIZE=thread >/dev/null
	@cmake --build build-tsan -j$(JOBS)
	@TSAN_OPTIONS="halt_on_error=1 suppressions=$(CURDIR)/tests/tsan.supp" scripts/run-tests.sh build-tsan

fuzz: deps
	@tests/fuzz/run.sh

bench: build
	@tests/bench/run.sh

soak: build
	@tests/bench/soak.sh

clean:
	rm -rf $(BUILD) build-asan build-tsan
