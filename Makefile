# gadget: build, run and test. `make run` and `make test` install what they need on Debian.
#
#   make run      install deps, build, build the profile_blockio image, run it (Ctrl+C to stop)
#   make test     install deps, build, run the whole test suite (what .ci/run calls)
#   make bench    BPF CPU per I/O against biolatency and bpftrace -> BENCHMARKS.md
#   make image    the DaemonSet's container image from deploy/Dockerfile, offline (podman)
#   make image-test   runs that image as deploy/kubernetes/daemonset.yaml does (part of make test)

SHELL := /bin/bash
CARGO ?= cargo
GUEST_TARGET := wasm32-wasip2
GUEST_DIR := target/$(GUEST_TARGET)/release
GADGET := target/release/gadget

.PHONY: all deps guests gadgets host run test lint unit-test integration-test deploy-validate bench clean image image-test
all: host gadgets

include ebpf/Makefile.inc

# Debian packages and the Rust target the build and tests need; a no-op when present.
APT_PACKAGES := clang llvm bpftool libbpf-dev libbpf-tools bpftrace jq util-linux curl prometheus docker-registry skopeo \
	podman runc debootstrap
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@rustup target list --installed | grep -qx $(GUEST_TARGET) || rustup target add $(GUEST_TARGET)

# Wasm guests: the built-in default guest (embedded in the host) and each gadget's own.
# Every workspace member but the host is a guest (gadgets/<name>/guest is package <name>-guest).
guests:
	$(CARGO) build --release --target $(GUEST_TARGET) --workspace --exclude gadget-host

# A gadget directory holds gadget.yaml and, once built, program.bpf.o and program.wasm:
# exactly what `gadget run <dir>` reads.
gadgets: ebpf-objects guests
	$(foreach g,$(EBPF_GADGETS),cp build/gadgets/$(g)/program.bpf.o gadgets/$(g)/program.bpf.o && \
		cp $(GUEST_DIR)/$(g)_guest.wasm gadgets/$(g)/program.wasm && ) true

host: guests
	$(CARGO) build --release -p gadget-host

# IG's workflow: the image is built into the local store under IG's name, so the short name resolves to it.
run: deps host gadgets
	$(GADGET) image build gadgets/profile_blockio -t profile_blockio:v0.46.0
	$(GADGET) run profile_blockio:v0.46.0

lint: guests
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit-test: guests
	$(CARGO) test --workspace --release --lib --bins
	$(CARGO) test --release -p gadget-guest-sdk --doc

# The container image (deploy/Dockerfile) from what `host gadgets` built: no second compile.
# GADGET_IMAGE names it (default localhost/gadget:dev); see deploy/README.md.
image: host gadgets
	deploy/image/build.sh

# The image run as the DaemonSet runs it (host/tests/container.rs); integration-test runs it too.
image-test: image
	$(CARGO) test --release -p gadget-host --test container -- --test-threads=1

# Real eBPF on real block I/O: needs root (CI runs as root).
integration-test: host gadgets image
	$(CARGO) test --release -p gadget-host --test '*' -- --test-threads=1

# Kubernetes manifests, offline against the OpenAPI schemas (no API server can run here).
deploy-validate:
	deploy/validate.sh

test: deps lint unit-test deploy-validate integration-test

bench: deps host gadgets
	bench/bpf-cost.sh --write BENCHMARKS.md

clean: ebpf-clean
	$(CARGO) clean
	rm -f gadgets/*/program.bpf.o gadgets/*/program.wasm
