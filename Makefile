# Two commands do all the set-up on a fresh machine:
#   make demo   # creates .venv when missing, then runs `groupcov demo`
#   make test   # creates .venv when missing, then runs ruff and the test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[all,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/groupcov demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

test: lint
	$(VENV)/bin/pytest -q -n 2 --doctest-modules src tests

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/two_groups.py --blas-threads 1 --warmup

clean:
	rm -rf $(VENV) .pytest_cache
