# vlembed — one flat Makefile.
#
#   make deps      install every build/test dependency (Debian packages, npm), idempotent
#   make           build build/vlembed-{supervisor,gateway,worker} and build/vlembedctl
#   make test      build and run every test; ends with "N passed, N failed"
#   make test-gpu  kernel and model parity tests on a machine with a GPU
#   make bench     benchmarks (GPU machine for the CUDA ones)
#   make device-bundle   binaries + shared libraries the GPU machine lacks, in build/bundle
#   make fmt / make lint
#   make fuzz      libFuzzer targets, each run for FUZZ_SECONDS (make fuzz-bins: build only)
#
# Knobs: CC, NVCC, CUDA_HOME, CUDA_ARCH, SAN=address,undefined, BUILD, WERROR=1, NO_CUDA=1.
#
# Layout convention (so new files need no Makefile edits):
#   common/*.c            -> $(BUILD)/libcommon.a
#   gateway/*.c           -> $(BUILD)/libgateway.a   (gateway/main.c is the gateway's main)
#   worker/*.c            -> $(BUILD)/libworker.a    (worker/main.c is the worker's main)
#   worker/cuda/*.cu      -> $(BUILD)/libworker_cuda.a (empty stub objects when NO_CUDA=1)
#   supervisor/*.c        -> $(BUILD)/libsupervisor.a (supervisor/main.c is the supervisor's main)
#   supervisor/ctl/*.c    -> vlembedctl (every file linked, subcommands register by name)
#   tests/unit/test_*.c   -> $(BUILD)/tests/test_*   (one binary per file, linked with all libs)
#   tests/unit/gpu_*.c    -> $(BUILD)/tests/gpu_*    (GPU tests; run by make test-gpu only)

BUILD     ?= build
CC        ?= cc
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(CUDA_HOME)/bin/nvcc
CUDA_ARCH ?= -gencode=arch=compute_90a,code=sm_90a -gencode=arch=compute_90,code=compute_90
SAN       ?=
STAMP     := build/.deps-stamp

OPT       ?= -O2
CFLAGS_BASE := -std=gnu17 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -MMD -MP -I. -pthread \
               -fno-strict-aliasing -D_GNU_SOURCE
ifneq ($(WERROR),)
CFLAGS_BASE += -Werror
endif
ifneq ($(SAN),)
CFLAGS_BASE += -fsanitize=$(SAN) -fno-omit-frame-pointer
LDFLAGS_SAN := -fsanitize=$(SAN)
endif
CFLAGS    += $(CFLAGS_BASE)
PKG_LIBS  := -luv -lmsgpackc -lcjson -lcurl -lhttp_parser -lutf8proc -lwebp -lwebpdemux -ljpeg -lpng -lm -ldl
ifeq ($(NO_CUDA),)
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart
NVCCFLAGS ?= -O3 -std=c++17 $(CUDA_ARCH) -Xcompiler -Wall,-Wextra,-Wno-unused-parameter -I. \
             --expt-relaxed-constexpr -lineinfo
endif
LDLIBS    := -Wl,--as-needed $(PKG_LIBS) $(CUDA_LIBS) -lstdc++ -pthread $(LDFLAGS_SAN)

COMMON_SRC  := $(wildcard common/*.c)
GATEWAY_SRC := $(filter-out gateway/main.c,$(wildcard gateway/*.c))
WORKER_SRC  := $(filter-out worker/main.c,$(wildcard worker/*.c))
SUPER_SRC   := $(filter-out supervisor/main.c,$(wildcard supervisor/*.c))
CTL_SRC     := $(wildcard supervisor/ctl/*.c)
CUDA_SRC    := $(wildcard worker/cuda/*.cu)
TEST_SRC    := $(wildcard tests/unit/test_*.c)
GPU_TEST_SRC:= $(wildcard tests/unit/gpu_*.c)
BENCH_SRC   := $(wildcard bench/cuda/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
COMMON_OBJ  := $(call obj,$(COMMON_SRC))
GATEWAY_OBJ := $(call obj,$(GATEWAY_SRC))
WORKER_OBJ  := $(call obj,$(WORKER_SRC))
SUPER_OBJ   := $(call obj,$(SUPER_SRC))
CTL_OBJ     := $(call obj,$(CTL_SRC))
ifeq ($(NO_CUDA),)
CUDA_OBJ    := $(patsubst %.cu,$(BUILD)/obj/%.o,$(CUDA_SRC))
else
CUDA_OBJ    :=
CFLAGS      += -DVL_NO_CUDA
endif

LIBS := $(BUILD)/libsupervisor.a $(BUILD)/libworker.a $(BUILD)/libworker_cuda.a \
        $(BUILD)/libgateway.a $(BUILD)/libcommon.a
BINS := $(BUILD)/vlembed-supervisor $(BUILD)/vlembed-gateway $(BUILD)/vlembed-worker $(BUILD)/vlembedctl
TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRC))
GPU_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(GPU_TEST_SRC))
BENCHES := $(patsubst bench/cuda/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.SECONDARY:
.PHONY: all deps test test-gpu bench fmt lint clean device-bundle tests gpu-bins
all: $(BINS)
tests: $(TESTS)
gpu-bins: $(GPU_TESTS) $(BENCHES)

deps: $(STAMP)
$(STAMP): scripts/deps.sh
	bash scripts/deps.sh
	@mkdir -p $(dir $@) && touch $@

$(BUILD)/obj/%.o: %.c | $(STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cu | $(STAMP)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

define mklib
$(BUILD)/$(1): $(2)
	@mkdir -p $$(dir $$@)
	@rm -f $$@
	ar rcs $$@ $(2) $$(if $(2),,$$(BUILD)/obj/empty.o)
endef
$(BUILD)/obj/empty.o: | $(STAMP)
	@mkdir -p $(dir $@)
	echo 'int vl_empty_archive_member;' | $(CC) -x c -c - -o $@
$(eval $(call mklib,libcommon.a,$(COMMON_OBJ)))
$(eval $(call mklib,libgateway.a,$(GATEWAY_OBJ)))
$(eval $(call mklib,libworker.a,$(WORKER_OBJ)))
$(eval $(call mklib,libworker_cuda.a,$(CUDA_OBJ)))
$(eval $(call mklib,libsupervisor.a,$(SUPER_OBJ)))
$(foreach l,libcommon.a libgateway.a libworker.a libworker_cuda.a libsupervisor.a,$(eval $(BUILD)/$(l): | $(BUILD)/obj/empty.o))

LINK = $(CC) $(CFLAGS) -o $@ $(filter %.o,$^) $(LIBS) $(LDLIBS)

$(BUILD)/vlembed-supervisor: $(BUILD)/obj/supervisor/main.o $(LIBS)
	$(LINK)
$(BUILD)/vlembed-gateway: $(BUILD)/obj/gateway/main.o $(LIBS)
	$(LINK)
$(BUILD)/vlembed-worker: $(BUILD)/obj/worker/main.o $(LIBS)
	$(LINK)
$(BUILD)/vlembedctl: $(CTL_OBJ) $(LIBS)
	$(LINK)
$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBS)
	@mkdir -p $(dir $@)
	$(LINK)
# GPU tests and CUDA benchmarks run on the GPU machine, which lacks libuv & co.: link only the
# libraries they use, so the device bundle stays small.
$(BUILD)/tests/gpu_%: $(BUILD)/obj/tests/unit/gpu_%.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(filter %.o,$^) -Wl,--as-needed $(LIBS) $(LDLIBS)
$(BUILD)/bench/%: $(BUILD)/obj/bench/cuda/%.o $(LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(filter %.o,$^) -Wl,--as-needed $(LIBS) $(LDLIBS)

test: $(BINS) $(TESTS)
	@bash tests/run.sh $(BUILD)

test-gpu: $(BINS) $(GPU_TESTS)
	@bash tests/run_gpu.sh $(BUILD)

bench: $(BINS) $(BENCHES)
	@bash bench/run.sh $(BUILD)

device-bundle: $(BINS) $(TESTS) $(GPU_TESTS) $(BENCHES)
	bash scripts/device-bundle.sh $(BUILD)

FMT_SRC = $(shell git ls-files '*.c' '*.h' '*.cu' '*.cuh')
fmt:
	clang-format -i $(FMT_SRC)
lint: | $(STAMP)
	clang-format --dry-run --Werror $(FMT_SRC)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr \
	  --suppress=missingIncludeSystem --std=c11 -I. -D__GNUC__ $(filter %.c,$(FMT_SRC))

clean:
	rm -rf $(BUILD)/obj $(BUILD)/tests $(BUILD)/bench $(BUILD)/lib*.a $(BINS) $(BUILD)/bundle

# ---- fuzzing (docs/security.md, "Fuzzing") ------------------------------------------------------
#   make fuzz-bins   build the libFuzzer targets (clang, ASan + UBSan) in $(BUILD)/fuzz
#   make fuzz        build them and run each for FUZZ_SECONDS (default 600) on a copy of its seeds
# Each target links only the sources it exercises, compiled again with coverage instrumentation.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 600
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS  := -std=gnu17 -g -O1 -I. -D_GNU_SOURCE -pthread -fno-strict-aliasing -MMD -MP -Wno-unknown-warning-option \
                -fsanitize=fuzzer-no-link $(FUZZ_SAN)
fobj = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(1))
FUZZ_COMMON := common/alloc.c common/log.c
FUZZ_SRC_http := tests/fuzz/fuzz_http.c gateway/http.c gateway/clients.c gateway/membudget.c $(FUZZ_COMMON)
FUZZ_SRC_api_json := tests/fuzz/fuzz_api_json.c gateway/api_parse.c $(FUZZ_COMMON)
FUZZ_SRC_mpapi := tests/fuzz/fuzz_mpapi.c gateway/mpapi_decode.c gateway/api_parse.c \
                  gateway/mp_intake.c gateway/membudget.c \
                  common/msgpack_util.c common/frame.c $(FUZZ_COMMON)
FUZZ_SRC_image := tests/fuzz/fuzz_image.c gateway/media_decode.c gateway/media_png.c \
                  gateway/media_stb.c gateway/media_resize.c $(FUZZ_COMMON)
FUZZ_SRC_safetensors := tests/fuzz/fuzz_safetensors.c worker/safetensors.c $(FUZZ_COMMON)
FUZZ_NAMES := http api_json mpapi image safetensors
FUZZERS := $(patsubst %,$(FUZZ_DIR)/fuzz_%,$(FUZZ_NAMES))
.PHONY: fuzz fuzz-bins
fuzz-bins: $(FUZZERS)
fuzz: $(FUZZERS)
	bash tests/fuzz/run.sh $(BUILD) $(FUZZ_SECONDS)
$(FUZZ_DIR)/obj/%.o: %.c | $(STAMP)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
define fuzzer
$(FUZZ_DIR)/fuzz_$(1): $(call fobj,$(FUZZ_SRC_$(1)))
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $$@ $$^ $(PKG_LIBS) -pthread
endef
$(foreach f,$(FUZZ_NAMES),$(eval $(call fuzzer,$(f))))

-include $(shell find $(BUILD)/obj $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)

# The README's first command: serve the committed tiny random-weight checkpoint on CPU workers
# unless MODEL= points at a real Qwen3-VL-Embedding checkpoint directory.
MODEL   ?= tests/data/tiny-model
BACKEND ?= cpu
HTTP    ?= 127.0.0.1:8080
.PHONY: run
run: $(BINS)
	$(BUILD)/vlembed-supervisor --model $(MODEL) --backend $(BACKEND) --http $(HTTP) \
	  --runtime-dir $(BUILD)/run
