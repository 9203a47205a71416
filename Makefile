# Two entry points: `make quickstart` (the main job) and `make test` (the whole suite).
# Both create .venv on first use and install the locked development environment
# (requirements-dev.lock: exact versions with hashes), then sisgen itself without deps.
# pyproject.toml keeps normal version ranges for users; `make lock` refreshes the lock.
# torch is locked to the CPU wheel (2.13.0+cpu); GPU users: see README "GPU set-up".
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements-dev.lock
# A local folder of wheels (this workplace keeps the CPU torch wheel there); used if present.
WHEELS ?= /opt/wheels
FIND_LINKS := $(if $(wildcard $(WHEELS)),--find-links $(WHEELS))

.PHONY: quickstart test setup lint lock

$(BIN)/sisgen: pyproject.toml $(LOCK)
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(FIND_LINKS) --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(BIN)/sisgen

setup: $(BIN)/sisgen

quickstart: setup
	$(BIN)/sisgen quickstart --out runs/quickstart

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests/test_layers.py  # import-linter on the installed layout

# Re-resolve the newest versions allowed by pyproject.toml (+ constraints-cpu.txt) and
# rewrite the lock with hashes. Review the diff, run `make test`, commit both files.
lock:
	$(PY) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet pip-tools
	.lock-venv/bin/pip-compile --quiet --upgrade --generate-hashes --extra dev --strip-extras \
	    --allow-unsafe --no-emit-find-links $(FIND_LINKS) -c constraints-cpu.txt \
	    -o $(LOCK) pyproject.toml
	rm -rf .lock-venv
