#!/usr/bin/env bash
# The whole test suite: lint, import contracts, types, then every tier of tests against the real
# RabbitMQ and PostgreSQL of this machine. Fails loudly if pytest collects no test.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/ensure-infra.sh
# The portal's browser test drives Debian's chromium and chromedriver (never a downloaded browser).
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "installing chromium and chromium-driver for the browser test"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
export PSYCOPG_WAIT_FUNC=wait_select
.venv/bin/ruff check .
.venv/bin/lint-imports --config pyproject.toml
.venv/bin/mypy  # pyproject.toml [tool.mypy]: strict on shared/contracts and the domain models
set +e
.venv/bin/python -m pytest -q -ra "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$status"
