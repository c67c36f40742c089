# Clientela: `make run` starts everything locally; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export TEST_POSTGRES_URL ?= postgresql+psycopg2://postgres@127.0.0.1:5432/postgres
export TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.PHONY: setup run prepare test test-browser test-faults test-unit test-service bench lint clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

WEB := gateway/web
$(WEB)/node_modules/.installed: $(WEB)/package.json $(WEB)/package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node.js 18+) is needed for the admin's front-end libraries: apt-get install nodejs npm" >&2; exit 1; }
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(VENV)/.installed $(WEB)/node_modules/.installed  ## create .venv, install everything (Python and the admin's npm libraries)

prepare: setup  ## check the broker, keys, migrate, declare queues, first owner, demo store
	@clientela check
	clientela keys
	clientela migrate
	clientela topology
	@clientela ensure-owner
	@if [ -z "$$NO_DEMO" ]; then clientela seed-demo; fi

# Locally the example storefront is on, and the links in emails lead to it.
run: export EXAMPLE_STOREFRONT ?= 1
# Card payments on the built-in test page (Pay / Decline, no money); production sets stripe.
run: export PAYMENT_PROVIDER ?= test
run: export STOREFRONT_URL ?= http://127.0.0.1:$(or $(GATEWAY_PORT),8000)/example-store
run: prepare  ## start every service and the gateway (http://127.0.0.1:$${GATEWAY_PORT:-8000})
	@echo "Gateway: http://127.0.0.1:$${GATEWAY_PORT:-8000}   admin: /admin/   example store: /example-store/   mail: var/mail/ (Maildir)"
	PYTHONWARNINGS="ignore::DeprecationWarning" honcho start -f Procfile

test: setup  ## the whole suite against real RabbitMQ, PostgreSQL, Redis and SMTP, then the browser suite
	@clientela check --postgres "$$TEST_POSTGRES_URL" --redis "$$TEST_REDIS_URL"
	pytest
	$(MAKE) --no-print-directory test-browser

test-browser: setup  ## the admin and example store in headless Debian chromium (screenshots: test-output/)
	@command -v chromium >/dev/null || { echo "chromium is needed for the browser tests: apt-get install chromium" >&2; exit 1; }
	CLIENTELA_BROWSER_TESTS=1 pytest tests/browser

test-faults: setup  ## the fault suite whole, with the SMTP server down for a minute (~5 min)
	@clientela check --postgres "$$TEST_POSTGRES_URL" --redis "$$TEST_REDIS_URL"
	pytest -m "" tests/faults -s

test-unit: setup  ## only the tests that need no broker or database (seconds)
	pytest -m "not e2e and not service and not slow"

test-service: setup  ## each service in-process on PostgreSQL and RabbitMQ: its rules, no system (~1 min)
	@clientela check --postgres "$$TEST_POSTGRES_URL" --redis "$$TEST_REDIS_URL"
	pytest -m "service and not slow"

bench: setup  ## benchmarks (PostgreSQL, RabbitMQ, wrk): figures with the command that made them
	@clientela check --postgres "$$TEST_POSTGRES_URL" --redis "$$TEST_REDIS_URL"
	@command -v wrk >/dev/null || { echo "wrk drives the load of some benchmarks: apt-get install wrk" >&2; exit 1; }
	python -W ignore -m bench.ceilings
	python -W ignore -m bench.session_check
	python -W ignore -m bench.accounts
	python -W ignore -m bench.checkout
	python -W ignore -m bench.checkout_cost
	python -W ignore -m bench.handlers
	python -W ignore -m bench.login_burst
	python -W ignore -m bench.scaling
	python -W ignore -m bench.scaling --consumers-paused
	python -W ignore -m bench.notifications
	python -W ignore -m bench.customers
	python -W ignore -m bench.orders
	python -W ignore -m bench.admin_pages
	python -W ignore -m bench.soak
	python -m bench.summary

lint: setup  ## ruff
	ruff check .

clean:  ## remove local state (var/) and the virtualenv
	rm -rf var $(VENV) $(WEB)/node_modules
