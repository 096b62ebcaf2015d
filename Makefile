# Two commands do all set-up on a fresh machine (see README): `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-slow lint bench clean

setup:
	VENV=$(VENV) scripts/setup.sh train,eval,dev

demo: setup
	$(PY) -m waveflow_py demo -o out/demo

# lint first: an unformatted or lint-failing change cannot pass the README's test command (CI runs it)
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest -q

test-slow: setup
	$(PY) -m pytest -q -m slow

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) -m waveflow_py bench

clean:
	rm -rf $(VENV) out
