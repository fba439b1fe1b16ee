# The two quickstart commands: `make run` and `make test`. Each creates .venv with only
# Python (>= 3.11) and pip, installs dlpipe into it, then runs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
SPEC   ?= specs/image-classification.yaml
PYTEST_ARGS ?=
# Worker processes for `make test` (pytest-xdist; each test module runs whole on one worker, so
# the runs a module shares are trained once per worker at most). 0: one process, in order.
TEST_WORKERS ?= 2

.PHONY: install run test test-fast bench bench-quick clean docs

$(BIN)/dlpipe: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/dlpipe

run: install            ## train, evaluate and export the digits CNN on bundled data
	$(BIN)/dlpipe run $(SPEC)

test: install           ## the whole test suite (what CI runs), on $(TEST_WORKERS) worker processes
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-fast: install      ## seconds: no training, no TensorFlow
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: install          ## every benchmark (several minutes); prints the summary table for docs/benchmarks.md
	$(BIN)/python benchmarks/run_all.py

bench-quick: install    ## every benchmark with small repeat counts: checks that they work, rough numbers
	$(BIN)/python benchmarks/run_all.py --quick

clean:
	rm -rf $(VENV) build *.egg-info runs

docs: install           ## regenerate docs/spec-reference.md from the spec models (after any spec change)
	$(BIN)/python -m dlpipe.spec.reference
