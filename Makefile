# The two commands of the README: `make demo` (the pipeline on embedded defaults) and `make test`.
PYTHON ?= python3
export PIP_ROOT_USER_ACTION := ignore
PIP := $(PYTHON) -m pip
DATA_SOURCE ?= sample

.PHONY: install install-system demo test lint bench

install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps -e .

install-system:
	bash scripts/install_system.sh

demo: install
	DATA_SOURCE=$(DATA_SOURCE) bash scripts/demo.sh

test: install install-system
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check mlplatform jobs apps tests benchmarks

bench:
	$(PYTHON) benchmarks/clean_bench.py
	$(PYTHON) benchmarks/train_bench.py
	$(PYTHON) benchmarks/serve_bench.py
