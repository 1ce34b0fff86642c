# The README's commands. Everything a fresh machine needs is set up from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The modules mypyc compiles (proxy/native.py): a change to one rebuilds them (setup.py).
NATIVE := $(shell sed -n 's/^    "\(.*\.py\)",$$/\1/p' proxy/native.py)

.PHONY: run test lint bench chaos soak services tools demo clean

# The dependencies first (plain Python), then the compiled hot path built in place against them
# (setup.py, mypyc, --no-build-isolation: mypy must see their types); no C compiler: plain Python.
$(STAMP): setup.py setup.cfg pyproject.toml proxy/native.py $(NATIVE)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip 'setuptools>=68' wheel
	KRATOS_HOOKS_PURE_PYTHON=1 $(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $(STAMP)

## run: start the service (embedded defaults when Redis / RabbitMQ / Postgres are not set)
# `exec`: the service replaces the recipe's shell, so a signal sent to its pid (SIGHUP reloads
# the access rules) reaches the service itself. The embedded outbox spool lives outside the
# checkout unless SPOOL_DIR says otherwise.
run: $(STAMP)
	SPOOL_DIR="$${SPOOL_DIR:-$${XDG_STATE_HOME:-$$HOME/.local/state}/kratos-hooks/spool}" \
	  exec $(BIN)/kratos-hooks serve

## services: make sure the local PostgreSQL, Redis and RabbitMQ are up (starts what is not)
services:
	bash scripts/services.sh

## tools: the Debian packages tests and benchmarks run for real (nginx, wrk), when missing
tools:
	bash scripts/tools.sh

## lint: ruff (lint + format check), mypy strict on the packages, the import layers
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

## test: lint, then the whole suite against the real local services
test: $(STAMP) services tools lint
	$(BIN)/python -m pytest

## bench: throughput and latency beside reference peers (nginx, a bare aiohttp handler)
bench: $(STAMP) tools
	bash bench/run.sh

## chaos: cut and stall Redis, RabbitMQ, Postgres and Kratos in turn under load; print the counts
# (RELIABILITY.md). CHAOS_FAULT_SECONDS / CHAOS_BASELINE_SECONDS change the lengths.
chaos: $(STAMP) services
	$(BIN)/python -m chaos.run

## soak: the same load for SOAK_SECONDS (600); RSS, open fds and p99 every SOAK_INTERVAL (30) s
soak: $(STAMP) services
	$(BIN)/python -m chaos.soak

## demo: the service in front of the Kratos stand-in on loopback (see README)
demo: $(STAMP)
	bash scripts/demo.sh

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache var
	find proxy handlers -name '*.so' -delete
