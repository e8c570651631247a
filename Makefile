# The project's command vocabulary. `make run` and `make test` work from a fresh clone with only Python.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test lint bench keys install migrate seed check-deploy clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

keys: install
	$(PY) -m identity.devkeys .env

## make run: development server on http://127.0.0.1:8000 (SQLite, eager tasks, demo data)
run: install keys
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py runserver 127.0.0.1:8000

## make test: the whole suite; SQLite without DATABASE_URL, PostgreSQL with it
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy identity accounts compliance
	$(PY) manage.py makemigrations --check --dry-run --settings=tests.settings

## make bench: field encryption, sign-in and GET /me under gunicorn, then data-subject requests
## (docs/benchmarks.md); SQLite without DATABASE_URL, PostgreSQL with it. BENCH_ARGS,
## SIGNIN_BENCH_ARGS and DSR_BENCH_ARGS pass options.
bench: install
	$(PY) -m tests.benchmarks.run $(BENCH_ARGS)
	$(PY) -m tests.benchmarks.signin $(SIGNIN_BENCH_ARGS)
	$(PY) -m tests.benchmarks.dsr $(DSR_BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
