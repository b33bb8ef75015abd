# The two commands of the README: `make demo` (the pipeline on embedded defaults) and `make test`.
# Both run in a virtual environment (VENV, default .venv) that scripts/install.sh creates and keeps in step with
# the locks. PYTHON picks the interpreter it is made from (3.11 to 3.13).
VENV ?= .venv
PYTHON ?= python3
export VENV PYTHON
PY := $(VENV)/bin/python
DATA_SOURCE ?= sample

.PHONY: install install-dev install-system demo test lint imports lock bench compose-up compose-pipeline compose-down compose-check

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
