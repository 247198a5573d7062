# Everything the project needs is installed into .venv by these targets.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test lint bench install clean browser test-moto-latest

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
	$(BIN)/mypy multiregion

# Figures as AWS would show them: the sandbox in the aws timing profile (strict) at time scale 10, a fresh and
# a converged up for 2, 4 and 8 regions against the plan's critical path, then the drills (about 5 minutes).
bench: install
	$(BIN)/python benchmarks/bench.py --timing aws --regions 2,4,8

# The sandbox's tests against the newest moto 5.x the registry offers, in a virtualenv of its own. The sandbox
# reaches into moto's internals (all of it in multiregion/sandbox/moto_compat.py), which moto does not keep
# stable between releases: this says whether a new release still fits before the pin in pyproject.toml moves.
# The `sandbox` extra is left out of the install: its pin would hold moto back at the tested releases.
MOTO_LATEST_VENV ?= .venv-moto-latest
MOTO_LATEST_SPEC ?= moto[server]>=5.2,<6
# Every test that drives a sandbox: its own tests and the end-to-end ones that run the CLI against it.
SANDBOX_TESTS = tests/test_sandbox_*.py tests/test_certificates_domains.py tests/test_drill_traffic_e2e.py \
	tests/test_failover.py tests/test_functions_api.py tests/test_handlers.py tests/test_health_checks.py \
	tests/test_plan_is_data.py tests/test_routing.py tests/test_moto_compat.py
test-moto-latest:
	$(PYTHON) -m venv $(MOTO_LATEST_VENV)
	$(MOTO_LATEST_VENV)/bin/pip install --quiet --upgrade pip
	$(MOTO_LATEST_VENV)/bin/pip install --quiet --upgrade -e '.[dev]' '$(MOTO_LATEST_SPEC)'
	@$(MOTO_LATEST_VENV)/bin/python -c "from importlib.metadata import version; print('moto', version('moto'))"
	$(MOTO_LATEST_VENV)/bin/python -m pytest -n 2 --dist loadfile -q $(SANDBOX_TESTS)
	@$(MOTO_LATEST_VENV)/bin/python -c "from importlib.metadata import version; print('passed with moto', version('moto'))"

clean:
	-$(BIN)/multiregion sandbox stop
	rm -rf $(VENV) $(MOTO_LATEST_VENV) .pytest_cache
