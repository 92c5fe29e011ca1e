# The two commands a newcomer needs: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install run test bench bench-intake bench-crews bench-notifications bench-billing lint clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: install
	bash deploy/local/ensure-infra.sh
	EXPEDIENTE_ENV=development PSYCOPG_WAIT_FUNC=wait_select $(PY) deploy/local/run.py

test: install
	bash deploy/local/test.sh

bench: install
	bash deploy/local/ensure-infra.sh
	PSYCOPG_WAIT_FUNC=wait_select $(PY) -m bench.bench_tracking

bench-intake: install
	bash deploy/local/ensure-infra.sh
	PSYCOPG_WAIT_FUNC=wait_select $(PY) -m bench.bench_intake

bench-crews: install
	bash deploy/local/ensure-infra.sh
	PSYCOPG_WAIT_FUNC=wait_select $(PY) -m bench.bench_crews

bench-notifications: install
	bash deploy/local/ensure-infra.sh
	PSYCOPG_WAIT_FUNC=wait_select $(PY) -m bench.bench_notifications

bench-billing: install
	bash deploy/local/ensure-infra.sh
	PSYCOPG_WAIT_FUNC=wait_select $(PY) -m bench.bench_billing

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --config pyproject.toml

clean:
	rm -rf var
