# OpenStation — the two commands of the README:
#   make run    installs what is needed, builds, and runs the product
#   make test   installs what is needed, builds, and runs every test
# Other targets: build, deps, fuzz, format, asan, clean, bench-gateway (not part of `make test`).

BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
ASAN_BUILD ?= build-asan
BENCH_BUILD ?= build-release
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=
FUZZ_SECONDS ?= 15
FUZZ_SEED ?= 1
FUZZ_RUNS ?= 40000

.PHONY: all deps build run test unit fuzz fuzz-long fuzz-build format asan clean bench-gateway bench-download

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja $(CMAKE_ARGS)

build: $(BUILD)/build.ninja
	cmake --build $(BUILD) -j $(JOBS)

run: deps build
	@bash scripts/run.sh $(BUILD)/openstation

test: deps
	cmake -S . -B $(BUILD) -G Ninja -DOPENSTATION_WERROR=ON $(CMAKE_ARGS)
	cmake --build $(BUILD) -j $(JOBS)
	@# llama.cpp's server for the real-engine e2e test: built once per version (cached outside the
	@# work tree) before the tests, so its compile does not load the machine while they run.
	@bash scripts/llama-server.sh build >/dev/null || \
	  echo "make test: llama-server is not available; e2e_llama will say why"
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)
	$(MAKE) fuzz

unit: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -L unit

# libFuzzer targets (clang), each run briefly over its seed corpus with a fixed seed and input
# count, so every CI run does the same work. `make fuzz-long` hunts with random seeds.
fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_SEED=$(FUZZ_SEED) FUZZ_RUNS=$(FUZZ_RUNS) \
	  ctest --test-dir $(FUZZ_BUILD) --output-on-failure

fuzz-long: fuzz-build
	FUZZ_SECONDS=300 FUZZ_SEED=0 FUZZ_RUNS=-1 ctest --test-dir $(FUZZ_BUILD) --output-on-failure -j $(JOBS)

fuzz-build:
	cmake -S . -B $(FUZZ_BUILD) -G Ninja -DOPENSTATION_FUZZ=ON \
	  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

asan:
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DOPENSTATION_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS) -L unit

# The gateway against the stand-in engine directly and nginx (docs/performance.md): a Release
# build with the bench tools, then bench/gateway/run.sh prints the report.
bench-gateway: deps
	cmake -S . -B $(BENCH_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DOPENSTATION_BENCH=ON $(CMAKE_ARGS)
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target openstation fake-engine os-loadgen
	bash bench/gateway/run.sh $(BENCH_BUILD)

# The hub client's download throughput against curl on the same fake hub (docs/models.md).
bench-download: deps
	cmake -S . -B $(BENCH_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release -DOPENSTATION_BENCH=ON $(CMAKE_ARGS)
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target os-download-bench
	$(BENCH_BUILD)/os-download-bench

format:
	find src tests bench -name '*.cpp' -o -name '*.hpp' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(ASAN_BUILD)
