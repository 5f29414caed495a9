# highmem-harness: the two commands a user needs are `make run` and `make test`.
# Knobs (environment or make variables): see README.md, section "Knobs".

SHELL := /bin/bash
VENV  := .venv
HM    := $(VENV)/bin/highmem
PY    := $(VENV)/bin/python

.PHONY: deps run test unit integration lint bench mutate bisect clean

deps:
	@scripts/deps.sh

# The main job: build the kernel, image and modules, boot the 8 GiB guest, check PTEs, report.
run:
	@start=$$(date +%s.%N); scripts/deps.sh && \
	  HIGHMEM_DEPS_STARTED=$$start $(HM) run $(RUN_ARGS)

# The project's own tests: unit tests (no VM) and the integration tests (real kernel/QEMU/gdb).
test: deps
	$(PY) -m pytest -ra tests $(TEST_ARGS)

lint: deps
	$(VENV)/bin/ruff check harness tests scripts

unit: deps
	$(PY) -m pytest -q tests/unit

bench: deps
	$(PY) scripts/bench.py $(BENCH_ARGS)

# Mutation testing: every patch in mutants/ applied in turn to a copy of the kernel tree,
# the suite run on each (minutes per mutant; not part of `make test`).
mutate: deps
	$(HM) mutate $(MUTATE_ARGS) mutants/

# The first bad commit of a git kernel tree, the harness as the test of `git bisect run`:
# make bisect BISECT_ARGS='--source ~/linux --good v6.12.10 --bad v6.12.11 -- --module kmap_local_basic'
bisect: deps
	$(HM) bisect $(BISECT_ARGS)

clean:
	$(HM) clean
