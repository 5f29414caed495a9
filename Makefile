# highmem-harness: the two commands a user needs are `make run` and `make test`.
# Knobs (environment or make variables): see README.md, section "Knobs".

SHELL := /bin/bash
VENV  := .venv
HM    := $(VENV)/bin/highmem
PY    := $(VENV)/bin/python

.PHONY: mainline mainline-test deps run test unit integration lint bench mutate coverage bisect bisect-test matrix matrix-test clean

# MATRIX=FILE: also the Debian packages that matrix's kernel sources come from (e.g.
# linux-source-6.1); without it, only what `make run` needs.
MATRIX_FILE = $(or $(MATRIX),matrices/default.yaml)

# KERNEL=newest (or X.Y): also Debian unstable's newest (or that) linux-source, unpacked into
# the cache, not installed (scripts/deps.sh; then --source linux-source-X.Y.tar.xz).
deps:
	@HIGHMEM_KERNEL=$(KERNEL) scripts/deps.sh
ifneq ($(MATRIX),)
	@pkgs=$$($(HM) matrix --packages $(MATRIX)) && scripts/deps.sh $$pkgs
endif

# The main job: build the kernel, image and modules, boot the 8 GiB guest, check PTEs, report.
run:
	@start=$$(date +%s.%N); scripts/deps.sh && \
	  HIGHMEM_DEPS_STARTED=$$start $(HM) run $(RUN_ARGS)

# The newest kernel in one command: Debian unstable's newest linux-source fetched into the
# cache (scripts/deps.sh), built with its profile (HIGHMEM4G + PAE, 4 GiB guest from 6.15:
# docs/mainline.md), the suite run on it.
mainline:
	@start=$$(date +%s.%N); HIGHMEM_KERNEL=newest scripts/deps.sh && \
	  HIGHMEM_DEPS_STARTED=$$start $(HM) run --source linux-source-newest.tar.xz $(RUN_ARGS)

# The project's own tests: unit tests (no VM) and the integration tests (real kernel/QEMU/gdb),
# TEST_JOBS pytest-xdist workers, each test file on one worker (its guests and fixtures shared).
TEST_JOBS ?= 2
test: deps
	$(PY) -m pytest -ra -n $(TEST_JOBS) --dist loadfile tests $(TEST_ARGS)

lint: deps
	$(VENV)/bin/ruff check harness tests scripts
	$(VENV)/bin/mypy

unit: deps
	$(PY) -m pytest -q tests/unit

bench: deps
	$(PY) scripts/bench.py $(BENCH_ARGS)

# Kernel coverage: the suite on a gcov kernel (its own build, minutes when cold), then the line
# and branch coverage of mm/highmem.c, mm/vmalloc.c and the highmem helpers (docs/coverage.md).
coverage: deps
	$(HM) coverage $(COVERAGE_ARGS)

# Mutation testing: every patch in mutants/ applied in turn to a copy of the kernel tree,
# the suite run on each (minutes per mutant; not part of `make test`).
mutate: deps
	$(HM) mutate $(MUTATE_ARGS) mutants/

# The suite on every cell of a kernel matrix (matrices/default.yaml: 6.12 and 6.1, PAE and
# 2-level, kmap_local debug, 1-4 CPUs), one table cell x module. Cold kernel builds for each
# cell not built yet; not part of `make test`.
matrix:
	@scripts/deps.sh && pkgs=$$($(HM) matrix --packages $(MATRIX_FILE)) && \
	  scripts/deps.sh $$pkgs && $(HM) matrix $(MATRIX_FILE) $(MATRIX_ARGS)

# The matrix cells' integration tests (tests/integration/test_matrix_cells.py: the 2-level
# walker against QEMU's info tlb, the suite on the highmem4g cell); skipped in `make test`.
matrix-test: deps
	HIGHMEM_MATRIX_TESTS=1 $(PY) -m pytest -ra tests/integration/test_matrix_cells.py $(TEST_ARGS)

# The first bad commit of a git kernel tree, the harness as the test of `git bisect run`:
# make bisect BISECT_ARGS='--source ~/linux --good v6.12.10 --bad v6.12.11 -- --module kmap_local_basic'
bisect: deps
	$(HM) bisect $(BISECT_ARGS)

# The mainline integration tests (tests/integration/test_mainline.py: the suite on 7.2 PAE-4G
# and 2-level, the 8 GiB boot the kernel trims to 4 GiB); 7.2 builds of their own, so not in
# `make test`. Needs `make deps KERNEL=7.2`.
mainline-test: deps
	HIGHMEM_MAINLINE_TESTS=1 $(PY) -m pytest -ra tests/integration/test_mainline.py $(TEST_ARGS)

# The bisect integration tests (tests/integration/test_bisect.py: a real `git bisect run`
# over five commits, each step an incremental kernel build); skipped in `make test`.
bisect-test: deps
	HIGHMEM_BISECT_TESTS=1 $(PY) -m pytest -ra tests/integration/test_bisect.py $(TEST_ARGS)

clean:
	$(HM) clean
