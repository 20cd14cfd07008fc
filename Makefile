# Thin wrapper for the README's two commands and CI. CMake does the work.
#   make run        install what is missing, build, serve conf.d/ (Ctrl-C stops)
#   make test       install what is missing, build, run every test
#   make sanitize   the test suite under ASan+UBSan
#   make fuzz       a short libFuzzer run of each target (FUZZ_SECONDS each)
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 30
CONF ?= conf.d

.PHONY: all build run test sanitize fuzz deps test-deps clean

all: build

deps:
	@scripts/deps.sh

test-deps:
	@scripts/deps.sh test

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DMBGW_TESTS=OFF >/dev/null
	cmake --build build -j$(JOBS)

run: build
	./build/mbgw -c $(CONF)

test: test-deps
	cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Release -DMBGW_WERROR=ON \
	      -DMBGW_TESTS=ON -DMBGW_REQUIRE_INTEROP=ON >/dev/null
	cmake --build build-test -j$(JOBS)
	cd build-test && ctest --output-on-failure -j$(JOBS)

sanitize: test-deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMBGW_WERROR=ON -DMBGW_SANITIZE=ON \
	      -DMBGW_TESTS=ON -DMBGW_REQUIRE_INTEROP=ON >/dev/null
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS)

fuzz: test-deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DMBGW_WERROR=ON -DMBGW_FUZZ=ON \
	      -DMBGW_TESTS=ON >/dev/null
	cmake --build build-fuzz -j$(JOBS) --target fuzz_targets
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf build build-test build-asan build-fuzz
