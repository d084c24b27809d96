# Two commands: `make demo` and `make test`. Both create .venv (if missing) and install every package of the
# workspace from this repository (editable, with its `all` extra where it has one) in one pip call.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := $(sort $(wildcard packages/*))
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo demo-gvsoc clean test-fast

venv: $(STAMP)

$(STAMP): $(wildcard packages/*/pyproject.toml) requirements-dev.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt \
		$(foreach p,$(PACKAGES),-e "$(p)$(shell grep -q '^all = ' $(p)/pyproject.toml && echo '[all]')")
	touch $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy packages/fb-schema/src/fb_schema packages/fb-heuristic/src/fb_heuristic

test: lint  # the whole suite, slow tests included
	$(BIN)/python -m pytest -m "slow or not slow"

test-fast: venv  # the edit-test loop: everything not marked slow (plain `pytest` does the same)
	$(BIN)/python -m pytest

demo: venv
	$(BIN)/python tools/freebits.py $(if $(CONFIG),$(CONFIG),configs/demo.py)

demo-gvsoc: venv  # needs the GVSOC kit's env.sh sourced (DORY_HOME, DORY_PYTHON, PULP_SDK_HOME)
	$(BIN)/python tools/freebits.py configs/demo_gvsoc.py

clean:
	rm -rf $(VENV) runs .pytest_cache
