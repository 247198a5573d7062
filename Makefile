# Everything the project needs is installed into .venv by these targets.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench install clean browser

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

test: install browser
	$(BIN)/python -m pytest -n 2 --dist loadfile -q

# The drill's HTML report is checked in headless Chromium (Debian's package); the test fails without it.
CHROMIUM = /usr/bin/chromium
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "$(CHROMIUM) is missing; install it with: sudo apt-get install -y chromium (or: sudo make browser)"; \
	fi

lint: install
	$(BIN)/ruff check multiregion tests benchmarks

bench: install
	$(BIN)/python benchmarks/bench.py

clean:
	-$(BIN)/multiregion sandbox stop
	rm -rf $(VENV) .pytest_cache
