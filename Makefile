# Two commands from a bare machine with Python 3.11 and make: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint browser bench bench-gpu bench-inference bench-recommend bench-anomalies bench-anomaly-quality bench-api clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/aifinops demo

# The dashboard's browser tests drive Debian's Chromium (Playwright's own browser download does not work offline):
# installed here when missing and apt-get can (as root); otherwise those tests say why they skip.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
	  (apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1)) || \
	  echo "chromium could not be installed: the browser tests will skip"

test: $(STAMP) browser
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

bench-anomalies: $(STAMP)
	$(BIN)/python bench/anomalies.py

bench-anomaly-quality: $(STAMP)
	$(BIN)/python bench/anomaly_quality.py

bench-api: $(STAMP)
	$(BIN)/python bench/api_load.py

clean:
	rm -rf $(VENV) aifinops.duckdb aifinops-demo
