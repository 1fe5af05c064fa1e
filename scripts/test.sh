#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: ruff (lint + format), mypy, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
.venv/bin/ruff check apollo tests benchmarks
.venv/bin/ruff format --check apollo tests benchmarks
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
