# The project's two commands: `make demo` (main job) and `make test` (test suite).
# Each creates .venv and installs what it needs on first use; later runs reuse it (idempotent).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# CPU torch first, so that resolving the other requirements never pulls a CUDA build
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[test,train]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python training/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

# every benchmark in its own process, with a summary table (benchmarks/README.md); QUICK=1 for the quick modes
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py $(if $(QUICK),--quick) $(BENCH_ARGS)

clean:
	rm -rf $(VENV)
