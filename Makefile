# Two commands from a bare machine with Python 3.11 and make: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-gpu bench-inference bench-recommend clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aifinops demo

test: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

bench-gpu: $(STAMP)
	$(BIN)/python bench/gpu_allocation.py

bench-inference: $(STAMP)
	$(BIN)/python bench/inference.py

bench-recommend: $(STAMP)
	$(BIN)/python bench/recommend.py

clean:
	rm -rf $(VENV) aifinops.duckdb aifinops-demo
