# Tandem — the two commands are `make run` and `make test`; the rest are steps.
SHELL := /bin/bash
BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
JOBS        ?= $(shell nproc)
CMAKE_FLAGS ?=
PROMPT      ?= Explain in two sentences why the sky is blue.
FUZZ_SECONDS ?= 600
MODEL_DIR   ?= $(HOME)/.cache/tandem/models
MODEL       ?= $(MODEL_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf
export TANDEM_MODEL_DIR := $(MODEL_DIR)

.PHONY: all deps build model fixtures run test test-asan test-fuzz bench soak fuzz clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

model:
	@bash scripts/fetch-model.sh >/dev/null

# Files the tests compare with llama.cpp's, made from the default model into
# the model cache once (SmolLM2 re-quantized to IQ4_NL and IQ4_XS).
fixtures: build model
	@bash scripts/make-fixtures.sh "$(BUILD)"

# The whole service (coordinator + GPU worker + CPU worker), one chat request
# through gRPC, then serving until Ctrl-C. TANDEM_ADDR / TANDEM_METRICS /
# GPU_LAYERS override the defaults (127.0.0.1:50051, 127.0.0.1:9400, 10).
run: build model
	@bash scripts/run-service.sh "$(BUILD)" "$(MODEL)" "$(PROMPT)"

# Every test: the Release build, then the same suite under ASan + UBSan,
# built -O1 -g1 (half the compile time of -O2 -g; the line tables still name
# file:line in every report), without the perplexity runs, which only repeat
# the forward passes the greedy goldens already cover, at 20x the tokens.
# TANDEM_REQUIRE_MODEL turns "model missing" from a skip into a failure.
test: build model fixtures
	@cd $(BUILD) && TANDEM_REQUIRE_MODEL=1 ctest -LE gpu --output-on-failure -j $(JOBS)
	@$(MAKE) --no-print-directory test-asan
	@$(MAKE) --no-print-directory test-fuzz

test-asan: deps model
	@cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DTANDEM_SANITIZE=ON -DTANDEM_CUDA=OFF -DTANDEM_BUILD_BENCH=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && TANDEM_REQUIRE_MODEL=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest -LE gpu -E 'Perplexity' --output-on-failure -j $(JOBS)

bench: build model
	@bash bench/run.sh "$(BUILD)" "$(MODEL)"

# Reliability runs (minutes; results go to docs/RELIABILITY.md): 100 worker
# kills under 8 streams (TANDEM_KILLS=), then a soak of 16 verified streams
# for SOAK_SECONDS (default 600) with RSS and fds sampled.
SOAK_SECONDS ?= 600
soak: build model
	@$(BUILD)/tests/tandem_soak_tests
	@python3 scripts/soak.py "$(BUILD)" "$(MODEL)" $(SOAK_SECONDS)

# libFuzzer targets (clang; ASan + UBSan): the GGUF reader, the tokenizers,
# chat templates, request validation and the shared-memory ring. Each runs
# FUZZ_SECONDS (default 600) after replaying tests/fuzz/regressions/.
fuzz: deps model
	@bash scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) 1

# The short pass `make test` runs: every target 30 s, two at a time.
test-fuzz: deps model
	@bash scripts/fuzz.sh $(FUZZ_BUILD) 30 $(JOBS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
