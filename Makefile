# Two commands do all set-up on a fresh Debian machine: `make study` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DATA_DIR := /usr/share/datasets/fashion-mnist
# Large freed buffers are otherwise returned to the OS and faulted in again every step (10-20% of a step).
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=100000000000

.PHONY: setup data system-deps study test lint bench clean

setup: $(STAMP) data

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e .
	touch $(STAMP)

# The test tools only where tests or the linter run: `make study` does without them.
$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test]'
	touch $(TEST_STAMP)

# The data set comes from Debian's package when apt-get is usable; otherwise fashionlab downloads it.
data:
	@if [ ! -f $(DATA_DIR)/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	fi

# Browser tests need Debian's chromium, the multi-worker sweep test a PostgreSQL server (the test starts its
# own on a free local port), the compiled Winograd transforms' tests a C compiler; installed when apt-get is
# usable, skipped otherwise.
system-deps: data
	@missing=""; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v cc >/dev/null || command -v gcc >/dev/null || missing="$$missing gcc"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

study: setup
	$(BIN)/fashionlab study --preset quick --out out/study

test: setup $(TEST_STAMP) system-deps
	$(BIN)/python -m pytest -q

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks

bench: setup
	$(BIN)/python benchmarks/epoch_speed.py

clean:
	rm -rf $(VENV) runs out
