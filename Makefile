# Agent Chat: `make run` serves the product, `make test` runs every test. `make help` lists the rest.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.DEFAULT_GOAL := help
.PHONY: help run test test-fast lint format bench bench-quick bench-profile migrate superuser clean

help: ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP) ## Create .venv, install, migrate and serve on http://127.0.0.1:8000
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py runserver $(HOST):$(PORT)

migrate: $(STAMP) ## Apply database migrations
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py migrate --noinput

superuser: $(STAMP) ## Create a staff account for the admin
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py createsuperuser

test: $(STAMP) ## Run the whole test suite (set-up included)
	$(BIN)/python manage.py check --settings=tests.settings
	$(BIN)/python manage.py makemigrations --check --dry-run --settings=tests.settings
	@if command -v node >/dev/null; then node --test tests/js/; else echo "node not found: skipping the page's JavaScript tests"; fi
	$(BIN)/pytest

test-fast: $(STAMP) ## The suite without the browser and live-server tests (about 2 minutes)
	$(BIN)/pytest -m "not browser and not live"

bench: $(STAMP) ## The full benchmark (about 20 minutes): bench/results.json, a table, docs/bench-*.png
	$(BIN)/python -m bench.run

bench-quick: $(STAMP) ## A quick benchmark run (about 4 minutes): saturation per server, first token, targets
	$(BIN)/python -m bench.run --quick

bench-profile: $(STAMP) ## Where the server's CPU goes per relayed token (py-spy; SERVER=uvicorn|daphne)
	$(BIN)/python -m bench.profile --server $${SERVER:-uvicorn} --total $${TOTAL:-1000}

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP) ## Format the code
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis staticfiles
