# The two commands of the README: `make demo` (the pipeline on embedded defaults) and `make test`.
# Both run in a virtual environment (VENV, default .venv) that scripts/install.sh creates and keeps in step with
# the locks. PYTHON picks the interpreter it is made from (3.11 to 3.13).
VENV ?= .venv
PYTHON ?= python3
export VENV PYTHON
PY := $(VENV)/bin/python
DATA_SOURCE ?= sample

.PHONY: install install-dev install-system demo test test-fast test-repeat lint imports lock bench compose-up compose-pipeline compose-down compose-check

install:
	bash scripts/install.sh runtime

install-dev:
	bash scripts/install.sh dev

install-system:
	bash scripts/install_system.sh

demo: install
	exec env DATA_SOURCE=$(DATA_SOURCE) $(PY) scripts/demo.py  # exec: the demo's parent is make (see demo.py)

test: install-dev install-system
	$(PY) -m pytest -q

# Unit and in-process tests only: no server subprocess, browser or job run (the `live` mark; tests/conftest.py).
test-fast: install-dev
	$(PY) -m pytest -q -m "not live"

# The flake guard: rerun a selection N times, each a fresh pytest (fixtures too); stops at the first failure.
#   make test-repeat K="concurrent_deploy" N=20
K ?=
N ?= 5
test-repeat: install-dev install-system
	@test -n "$(K)" || { echo 'test-repeat: give a selection, e.g. make test-repeat K="concurrent_deploy" N=5' >&2; exit 2; }
	@log=$$(mktemp); for i in $$(seq 1 $(N)); do \
	  if $(PY) -m pytest -q -p no:cacheprovider -o addopts="" -k "$(K)" > $$log 2>&1; then \
	    echo "run $$i of $(N): $$(tail -1 $$log)"; \
	  else tail -40 $$log; echo "test-repeat: run $$i of $(N) failed (whole log: $$log)" >&2; exit 1; fi; \
	done; echo "test-repeat: $(N) of $(N) passed: $(K)"

lint: install-dev
	$(PY) -m ruff check mlplatform jobs apps tests benchmarks

imports:
	python3 scripts/import_graph.py

lock:
	bash scripts/lock.sh

bench: install-dev
	$(PY) benchmarks/clean_bench.py
	$(PY) benchmarks/train_bench.py
	$(PY) benchmarks/serve_bench.py
	$(PY) benchmarks/batch_bench.py

# The compose stack on any machine (this one too: no registry needed). See the README's "Docker Compose".
compose-up: install-dev install-system
	$(PY) scripts/compose.py up

compose-pipeline: install-dev install-system
	$(PY) scripts/compose.py pipeline

compose-down: install-dev install-system
	$(PY) scripts/compose.py down

compose-check: install-dev install-system
	$(PY) scripts/compose.py check
