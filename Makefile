# Two entry points: `make quickstart` (the main job) and `make test` (the whole suite).
# Both create .venv on first use. On CPU-only machines torch is pinned to the local CPU
# wheel by constraints-cpu.txt; GPU users: see README "GPU set-up".
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONSTRAINTS ?= constraints-cpu.txt
# A local folder of wheels (this workplace keeps the CPU torch wheel there); used if present.
WHEELS ?= /opt/wheels
FIND_LINKS := $(if $(wildcard $(WHEELS)),--find-links $(WHEELS))

.PHONY: quickstart test setup lint

$(BIN)/sisgen: pyproject.toml $(CONSTRAINTS)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(FIND_LINKS) -c $(CONSTRAINTS) -e ".[dev]"
	touch $(BIN)/sisgen

setup: $(BIN)/sisgen

quickstart: setup
	$(BIN)/sisgen quickstart --out runs/quickstart

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
