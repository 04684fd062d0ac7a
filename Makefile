# camrescue — every target creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: scenarios test test-busy bench lint clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

scenarios: $(STAMP)
	$(BIN)/camrescue scenarios run -n 2

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q

# the suite with two CPU hogs beside it: no test may depend on the machine's speed
test-busy: $(STAMP)
	$(BIN)/python .ci/busy.py --hogs 2 -- $(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info reports
