# berth: `make demo` and `make test` on a fresh Debian 12 machine, as root.

CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(CURDIR)/target
BIN := $(CARGO_TARGET_DIR)/release

# What the tests and the demo need from Debian. The peers (podman, docker,
# containerd, runc, crun, skopeo, the registry) are for interop tests and
# benchmarks.
DEPS_BUILD := busybox-static libseccomp-dev pkg-config gcc make tar
DEPS_TEST := $(DEPS_BUILD) runc crun podman docker.io containerd skopeo umoci debootstrap hyperfine tmux iproute2 procps nftables util-linux docker-registry time python3-venv docker-compose

.PHONY: all build release deps-build deps-test test soak demo bench fuzz clean fmt lint

all: build

deps-build:
	@scripts/apt-ensure $(DEPS_BUILD)

deps-test:
	@scripts/apt-ensure $(DEPS_TEST)

build: deps-build
	$(CARGO) build --workspace

release: deps-build
	$(CARGO) build --release --workspace

test: deps-test
	$(CARGO) build --workspace --all-targets
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
	  $(CARGO) nextest run --workspace --no-fail-fast --profile ci; \
	else \
	  $(CARGO) test --workspace --no-fail-fast; \
	fi

# The load soak of issue 10: SOAK_LOOPS (100) parallel `run --rm` loops
# for SOAK_SECONDS (600), then nothing may be left behind; then issue 8's
# API load for API_LOAD_SECONDS.
SOAK_SECONDS ?= 600
SOAK_LOOPS ?= 100
# Issue 8's: 100 API clients running containers through `berth serve`.
API_LOAD_SECONDS ?= 60
soak: deps-test
	$(CARGO) build -p berth-cli -p berth-monitor
	BERTH_REQUIRE_ROOT=1 SOAK_SECONDS=$(SOAK_SECONDS) SOAK_LOOPS=$(SOAK_LOOPS) \
	  $(CARGO) test -p berth-cli --test soak -- --nocapture
	$(CARGO) build --workspace --bins
	BERTH_REQUIRE_ROOT=1 API_LOAD_SECONDS=$(API_LOAD_SECONDS) \
	  $(CARGO) test -p berth-tests --test api_load -- --nocapture

demo: release
	BIN=$(BIN) scripts/demo

# Every benchmark beside the peers, into docs/benchmarks.md and its plots
# (docs/*.svg); QUICK=1: a small version of each in a few minutes, into
# target/bench-quick/ (see bench/run).
bench: release deps-test
	BIN=$(BIN) bench/run $(if $(QUICK),--quick,)

# Every fuzz target of fuzz/ for FUZZ_SECONDS each (FUZZ_TARGETS to pick
# some); the corpora grow in fuzz/corpus/. See docs/fuzzing.md.
FUZZ_SECONDS ?= 600
fuzz: deps-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz $(FUZZ_TARGETS)

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
