# Two commands for a fresh machine: `make demo` and `make test`. Each does its own set-up.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test check demo venv system-deps clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

system-deps:
	bash .ci/system-deps.sh

# lint and type-check (ruff, mypy strict: pyproject.toml), then the tests
check: venv
	$(VENV)/bin/ruff check mailnb tests bench
	$(VENV)/bin/mypy

test: check system-deps
	$(PY) -m pytest

demo: venv
	$(VENV)/bin/mailnb demo

clean:
	rm -rf $(VENV) build *.egg-info mailnb-demo
