# wavegate: `make run` starts it, `make test` is what CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run console test lint typecheck pytest bench bench-history bench-ack clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Migrate, then serve when Slack settings exist, else open the console.
run: $(STAMP)
	$(BIN)/wavegate db upgrade
	@if [ -n "$$SLACK_BOT_TOKEN" ] || grep -qs '^SLACK_BOT_TOKEN=' .env; then \
		$(BIN)/wavegate serve; \
	else \
		$(BIN)/wavegate console $(ARGS); \
	fi

# The console with its options passed through: make console ARGS="--speed 12000 --user U0ME"
console: $(STAMP)
	$(BIN)/wavegate db upgrade
	$(BIN)/wavegate console $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest exits 5 when it collected nothing; that is a failure here.
pytest: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck pytest

# `make bench DB=postgres ROLLOUTS=5000` (or ARGS="--db postgres --rollouts 5000"); PostgreSQL
# runs on TEST_DATABASE_URL, whose public schema the benchmark drops and rebuilds.
bench: $(STAMP)
	$(BIN)/python -m tests.perf.poll $(if $(DB),--db $(DB)) $(if $(ROLLOUTS),--rollouts $(ROLLOUTS)) $(ARGS)

# `/wave status` and `/wave history` latency at 10 k, 1 M and 10 M stored measurements
# (`make bench-history ARGS="--max 1000000"` stops at 1 M).
bench-history: $(STAMP)
	$(BIN)/python -m tests.perf.history $(if $(DB),--db $(DB)) $(ARGS)

# wavegate's acknowledgement next to bare Bolt; e.g. make bench-ack ARGS="--db postgres --quick"
bench-ack: $(STAMP)
	$(BIN)/python -m tests.perf.ack $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
