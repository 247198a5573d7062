# Everything the project needs is installed into .venv by these targets.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench install clean

$(BIN)/multiregion: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[sandbox,dev]'
	touch $@

install: $(BIN)/multiregion

# Converge the demo stack on the embedded sandbox, rehearse a regional failover, stop the sandbox.
demo: install
	$(BIN)/multiregion up
	$(BIN)/multiregion failover-test
	$(BIN)/multiregion sandbox stop

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: install
	$(BIN)/ruff check multiregion tests benchmarks

bench: install
	$(BIN)/python benchmarks/bench.py

clean:
	-$(BIN)/multiregion sandbox stop
	rm -rf $(VENV) .pytest_cache
