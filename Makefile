# inclavare developer entry points. Everything runs as root on Debian 12.
#   make setup        apt packages, .venv, editable install with dev extras (idempotent)
#   make demo         a confidential container end to end on the built-in defaults
#   make test         unit + integration tests (what CI runs)
#   make conformance  the third-party harness runs (runtime-tools, containerd)
#   make bench        start-up benchmark against runc and crun
#   make lint         ruff (lint and format check) + mypy

SHELL := /bin/bash
# Debian's interpreter, not a pyenv shim: rune's start-up time is measured and
# a shell-script shim alone costs more than runc's whole `run`.
PYTHON ?= /usr/bin/python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
HARNESS ?= ../shared/harness

APT_PKGS := python3 python3-venv python3-dev gcc make libc6-dev \
	busybox-static libseccomp2 iproute2 procps util-linux \
	runc crun containerd jq hyperfine clang lld wasi-libc \
	postgresql skopeo umoci

.PHONY: setup apt protos samples demo demo-hostile test test-unit test-integration conformance bench lint clean

setup: apt $(STAMP) protos build/rune build/containerd-shim-rune-v2 samples

# Python modules for the .proto files under proto/ (the CRI that the
# Kubernetes-path tests speak), into the gitignored src/inclavare/_proto;
# a no-op while proto/ and the grpcio-tools version are unchanged.
protos: $(STAMP)
	$(VPY) tools/genproto.py

# The sample enclaves (a WASI module, a static native program): demo and tests use them.
samples: apt
	$(MAKE) -C samples

apt:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev]'
	touch $@

# The fast launcher: runs rune with `-I -S` on the venv's interpreter, so
# start-up skips site processing (see docs/architecture.md, "start-up").
build/rune: tools/mklauncher.py src/inclavare/_launcher.py $(STAMP)
	$(VPY) tools/mklauncher.py $@

# containerd's shim v2 for rune (runtime type io.containerd.rune.v2), the same
# way: containerd finds it on its $PATH (docs/shim.md).
build/containerd-shim-rune-v2: tools/mklauncher.py src/inclavare/_launcher.py $(STAMP)
	$(VPY) tools/mklauncher.py $@

demo: setup
	$(VPY) -m inclavare.demo

# The demo plus a hostile host: it redirects the enclave to a broker of its own and fails.
demo-hostile: setup
	$(VPY) -m inclavare.demo --hostile

test: setup
	$(VPY) -m pytest -q tests

test-unit: setup
	$(VPY) -m pytest -q tests/unit

test-integration: setup
	$(VPY) -m pytest -q tests/integration

# oci-validation.sh exits 1 while any file fails, and runc and crun fail 12-23 of
# them too (../shared/harness/BASELINE.md): its closing lines are the result, so
# the containerd runs still go ahead; those must pass 17 of 17.
conformance: setup
	-cd $(HARNESS) && ./oci-validation.sh $(CURDIR)/build/rune
	cd $(HARNESS) && ./containerd-e2e.sh $(CURDIR)/build/rune
	cd $(HARNESS) && SHIM_BINARY=$(CURDIR)/build/containerd-shim-rune-v2 ./containerd-e2e.sh $(CURDIR)/build/rune

# Every benchmark in bench/ (none is a test): each compares against its
# reference (runc/crun, plain TLS, Intel's published QVL figure) in one run.
# startup.py and carrier.py are part of fast_start.py's table, which ends the run
BENCHES := $(filter-out bench/startup.py bench/profile_run.py bench/carrier.py bench/fast_start%,$(wildcard bench/*.py))

bench: setup
	$(VPY) bench/profile_run.py --rune $(CURDIR)/build/rune
	@for b in $(BENCHES); do echo "== $$b"; $(VPY) $$b || exit 1; done
	$(VPY) bench/fast_start.py $(if $(wildcard $(HARNESS)),--harness $(HARNESS)) --rune $(CURDIR)/build/rune

lint: setup
	$(VENV)/bin/ruff check src tests bench tools
	$(VENV)/bin/ruff format --check src tests bench tools
	$(VENV)/bin/mypy

clean:
	rm -rf build .pytest_cache
