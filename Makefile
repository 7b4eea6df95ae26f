# One command runs the dashboard (`make run`), one passes the tests (`make test`).
# Both create .venv and install requirements.txt first; nothing else needs installing.

PYTHON ?= $(shell command -v python3.13 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SIM_PORT ?= 8765
PORT ?= 8000

WORKERS ?= 2
THREADS ?= 8
BIND ?= 127.0.0.1:$(PORT)

.PHONY: install run serve worker demo-passwords test screenshots bench format clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12) and "aquadash needs Python 3.12 or newer")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	@touch $@

install: $(VENV)/.installed

run demo-passwords: export DEBUG ?= 1
run demo-passwords: export ZUORA_EXTRA_HOSTS ?= 127.0.0.1:$(SIM_PORT)
run demo-passwords: export AQUADASH_SIMULATOR_URL ?= http://127.0.0.1:$(SIM_PORT)
# The web server and the worker are two processes: without Redis they share answers and locks
# through a cache table in the SQLite database.
run: export CACHE_TABLE ?= aquadash_cache
# The demo users' passwords and the addresses are printed last, after the simulator's and the
# worker's start-up lines, just before the server's banner, where they are easy to find.
run: install
	@mkdir -p var
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py createcachetable
	@demo=$$($(BIN)/python manage.py setup_demo --kept-job) || exit 1; \
	  $(BIN)/python manage.py simulate_zuora --port $(SIM_PORT) & sim=$$!; \
	  $(BIN)/python manage.py db_worker --no-reload & worker=$$!; \
	  trap 'kill $$sim $$worker 2>/dev/null' EXIT INT TERM; \
	  sleep 1; \
	  echo; echo "$$demo"; \
	  echo "Zuora simulator: http://127.0.0.1:$(SIM_PORT)"; \
	  echo "Worker:          watched jobs, notifications and kept files (e-mails print here)"; \
	  echo "aquadash:        http://127.0.0.1:$(PORT)/"; \
	  $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

# Production serving: settings come from the environment (see the README's Configuration).
# gunicorn.conf.py holds its hooks; each process keeps its metrics in PROMETHEUS_MULTIPROC_DIR
# (a worker on the same machine may share it, so /metrics counts its Zuora calls too).
serve worker: export PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/var/prometheus
serve: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py collectstatic --noinput
	$(BIN)/gunicorn aquadash.wsgi --worker-class gthread --workers $(WORKERS) \
	  --threads $(THREADS) --timeout 60 --bind $(BIND)

# A background worker: watched jobs and their notifications. Run one or more beside `serve`,
# on any server, with the same settings; they share the queue through the database.
worker: install
	$(BIN)/python manage.py db_worker --no-reload --no-startup-delay

demo-passwords: install
	$(BIN)/python manage.py setup_demo --new-passwords

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest $(ARGS)

# The browser tests (tests/browser, Chromium at /usr/bin/chromium), saving the job page's
# screenshots in each look to docs/screenshots/.
screenshots: install
	AQUADASH_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/browser $(ARGS)

# Every benchmark in bench/, then docs/benchmarks/report.md with each figure beside its baseline
# from the same run (about 8 minutes; needs PostgreSQL and Redis on 127.0.0.1, wrk if installed).
bench: install
	$(BIN)/python bench/report.py

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
