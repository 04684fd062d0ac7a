# camrescue — every target creates .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: scenarios test test-busy bench lint mutate clean

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

# Mutation testing (issue 21; not part of CI): mutmut over the flash model and the
# parsers in a temporary worktree of HEAD; prints the score per file and the survivors,
# writes docs/mutation.md. About a quarter of an hour on two cores.
mutate: $(STAMP)
	@$(BIN)/python -c "import mutmut" 2>/dev/null || $(BIN)/python -m pip install --quiet 'mutmut>=3.3'
	$(BIN)/python tools/mutate.py --report docs/mutation.md

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info reports
