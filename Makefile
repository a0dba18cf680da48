# gadget: build, run and test. `make run` and `make test` install what they need on Debian.
#
#   make run      install deps, build, build the profile_blockio image, run it (Ctrl+C to stop)
#   make test     install deps, build, run the whole test suite (what .ci/run calls)
#   make bench    BPF CPU per I/O against biolatency and bpftrace, memory per instance -> BENCHMARKS.md
#   make fuzz     every fuzz target for FUZZ_SECONDS each (docs/fuzzing.md)
#   make image    the DaemonSet's container image from deploy/Dockerfile, offline (podman)
#   make image-test   runs that image as deploy/kubernetes/daemonset.yaml does (part of make test)
#   make install  `gadget` and the `kubectl-gadget` plugin symlink into $(PREFIX)/bin (PREFIX=/usr/local)

SHELL := /bin/bash
CARGO ?= cargo
GUEST_TARGET := wasm32-wasip2
GUEST_DIR := target/$(GUEST_TARGET)/release
GADGET := target/release/gadget
# The host's crates (host/*/Cargo.toml; README.md's architecture): every other workspace member is a guest.
HOST_CRATES := gadget-keys gadget-object gadget-model gadget-ebpf gadget-wasm gadget-image gadget-net \
	gadget-operators gadget-api gadget-runtime gadget-daemon gadget-cluster gadget-host gadget-signature gadget-events
# Pure crates whose tests/ need no root and no build of the gadgets: part of unit-test (by test
# target name, so they build with the other host crates' unit tests; see unit-test).
PURE_TEST_CRATES := signature events
PURE_TESTS := $(basename $(notdir $(wildcard $(PURE_TEST_CRATES:%=host/%/tests/*.rs))))
CARGO_MACHETE_VERSION := 0.9.2

.PHONY: all deps guests gadgets host install run test lint lint-deps unit-test integration-test deploy-validate bench clean \
	fuzz-deps fuzz-build fuzz fuzz-check fuzz-open image image-test
all: host gadgets

include ebpf/Makefile.inc

# Debian packages and the Rust target the build and tests need; a no-op when present.
APT_PACKAGES := clang clang-19 llvm bpftool libbpf-dev libbpf-tools bpftrace jq util-linux curl prometheus docker-registry skopeo \
	podman runc debootstrap openssl fio
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
# A kubectl for the plugin's test (kubectl.rs): Debian's kubernetes-client unless one is on PATH.
	@command -v kubectl >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client >/dev/null; }
	@rustup target list --installed | grep -qx $(GUEST_TARGET) || rustup target add $(GUEST_TARGET)

# Wasm guests: the built-in default guest (embedded in the host) and each gadget's own.
# Every workspace member but the host's crates is a guest (gadgets/<name>/guest is package <name>-guest).
guests:
	$(CARGO) build --release --target $(GUEST_TARGET) --workspace $(addprefix --exclude ,$(HOST_CRATES))

# A gadget directory holds gadget.yaml and, once built, program.bpf.o and program.wasm:
# exactly what `gadget run <dir>` reads.
gadgets: ebpf-objects guests
	$(foreach g,$(EBPF_GADGETS),cp build/gadgets/$(g)/program.bpf.o gadgets/$(g)/program.bpf.o && \
		cp $(GUEST_DIR)/$(g)_guest.wasm gadgets/$(g)/program.wasm && ) true

host: guests
	$(CARGO) build --release $(addprefix -p ,$(HOST_CRATES))

# IG's workflow: the image is built into the local store under IG's name, so the short name resolves to it.
run: deps host gadgets
	$(GADGET) image build gadgets/profile_blockio -t profile_blockio:v0.46.0
	$(GADGET) run profile_blockio:v0.46.0

# `gadget` and the kubectl plugin (`kubectl gadget X` is `gadget --cluster X`: the binary answers as
# kubectl-gadget when called by that name). PREFIX=/usr/local puts both in /usr/local/bin.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
install: host
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(GADGET) $(DESTDIR)$(BINDIR)/gadget
	ln -sf gadget $(DESTDIR)$(BINDIR)/kubectl-gadget

# cargo-machete: a dependency a crate declares but never uses fails the lint.
lint-deps:
	@cargo machete --version 2>/dev/null | grep -q '$(CARGO_MACHETE_VERSION)' || \
		$(CARGO) install --locked cargo-machete --version $(CARGO_MACHETE_VERSION)

lint: guests lint-deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	cargo machete --with-metadata host guest-sdk gadgets

# Cargo resolves features per invocation: the host's crates are tested with exactly the package set
# `make host` builds, so their dependencies (wasmtime above all) are the ones that build made and the
# integration tests reuse, not a second copy with the guests' features unified in; the guests (no
# wasmtime) are tested apart.
unit-test: guests
	$(CARGO) test --release $(addprefix -p ,$(HOST_CRATES)) --lib --bins $(addprefix --test ,$(PURE_TESTS))
	$(CARGO) test --release --workspace $(addprefix --exclude ,$(HOST_CRATES)) --lib --bins
	$(CARGO) test --release -p gadget-guest-sdk --doc

# The container image (deploy/Dockerfile) from what `host gadgets` built: no second compile.
# GADGET_IMAGE names it (default localhost/gadget:dev); see deploy/README.md.
image: host gadgets
	deploy/image/build.sh

# The image run as the DaemonSet runs it (host/cli/tests/it/container.rs); integration-test runs it too.
image-test: image
	$(CARGO) test --release -p gadget-host --test it -- container:: --include-ignored --test-threads=1

# Real eBPF on real block I/O: needs root (CI runs as root); those tests are
# #[ignore = "needs root"], so a plain `cargo test` as a user skips them instead of failing.
# high_iops:: is an open finding (silent losses at ~300k IOPS, see its module docs), skipped
# here and run by hand: cargo test --release -p gadget-host --test it -- high_iops:: --ignored
integration-test: host gadgets ebpf-test-objects image
	$(CARGO) test --release -p gadget-host --test it -- --include-ignored --skip high_iops:: --test-threads=1

# Kubernetes manifests, offline against the OpenAPI schemas (no API server can run here).
deploy-validate:
	deploy/validate.sh

test: deps lint unit-test deploy-validate fuzz-check integration-test

# Fuzzing (docs/fuzzing.md): libFuzzer through cargo-fuzz on stable Rust. `-s none` builds
# without a sanitizer, which needs no -Z flag (no nightly, no RUSTC_BOOTSTRAP): coverage
# instrumentation and libFuzzer's -rss_limit_mb/-malloc_limit_mb/-timeout work the same; only
# ASan's memory-error detection is lost, which safe Rust code does not need. The fuzz crate
# (fuzz/) has its own workspace and target directory: its instrumented build (the host crates it uses and
# every dependency: a cold build is about 10 minutes on 2 cores) never touches target/.
FUZZ_TARGETS := gadget_yaml manifest annotate image_ref oci_json archive_import registry_auth \
	ebpf_object daemon_frame guest_publish
# Seconds per target: `make fuzz` (override one with FUZZ_SECONDS_<target>=N), `make test`.
FUZZ_SECONDS ?= 300
FUZZ_CHECK_SECONDS ?= 0
CARGO_FUZZ_VERSION := 0.13.2

fuzz-deps:
	@cargo fuzz --version 2>/dev/null | grep -q ' $(CARGO_FUZZ_VERSION)$$' || \
		$(CARGO) install --locked cargo-fuzz --version $(CARGO_FUZZ_VERSION)

fuzz-build: fuzz-deps guests
	$(CARGO) fuzz build -s none --debug-assertions --codegen-units 16

# Every target from its checked-in seeds (each seed once, then FUZZ_CHECK_SECONDS of
# mutation); a crash, timeout or out-of-memory fails the run (inputs in fuzz/artifacts/).
# `make test` replays the seeds only (FUZZ_CHECK_SECONDS 0): a test run must not depend on
# what random mutation happens to find; finding new inputs is `make fuzz`'s job.
fuzz-check: fuzz-build
	@failed=""; for t in $(FUZZ_TARGETS); do \
		fuzz/run.sh smoke $$t $(FUZZ_CHECK_SECONDS) || failed="$$failed $$t"; \
	done; [ -z "$$failed" ] || { echo "fuzz: failed:$$failed"; exit 1; }

# Inputs of findings not fixed yet (fuzz/open/<target>/): which still fail.
fuzz-open: fuzz-build
	@for t in $(FUZZ_TARGETS); do fuzz/run.sh open $$t; done

fuzz: fuzz-build
	@failed=""; for t in $(FUZZ_TARGETS); do \
		fuzz/run.sh fuzz $$t $${FUZZ_SECONDS_$$t:-$(FUZZ_SECONDS)} || failed="$$failed $$t"; \
	done; [ -z "$$failed" ] || { echo "fuzz: found inputs for:$$failed (see fuzz/artifacts/)"; exit 1; }

bench: deps host gadgets
	bench/bpf-cost.sh --write BENCHMARKS.md
	bench/memory.sh --write BENCHMARKS.md

clean: ebpf-clean
	$(CARGO) clean
	rm -f gadgets/*/program.bpf.o gadgets/*/program.wasm
