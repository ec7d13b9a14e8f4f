# Two entry points: `make build` (set up + build the sample site) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
SITEGEN := $(VENV)/bin/sitegen

.PHONY: setup build test bench clean

setup:
	bash scripts/setup.sh

build: setup
	$(SITEGEN) build --pdf

test: setup
	$(VENV)/bin/ruff check generator tests benchmarks
	$(PY) -m pytest -n 2 --timeout=900 tests

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf output .sitegen-cache
