# One task runner for people and CI. `make run` and `make test` are the README's quick start.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help setup run test lint format bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

setup:  ## system packages (PostGIS), uv and the locked Python environment
	@scripts/bootstrap.sh

run: setup  ## embedded PostgreSQL + migrations + demo data + status summary
	uv run dbops up

test: setup  ## the whole test suite against private PostgreSQL clusters
	uv run pytest

lint: setup  ## ruff, mypy (strict on dbops), import contracts
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy
	uv run lint-imports

format:  ## apply ruff's fixes and formatting
	uv run ruff check --fix .
	uv run ruff format .

bench: setup  ## benchmarks (results go to docs/benchmarks.md)
	uv run python -m bench.bench_seed
	uv run python -m bench.bench_services

clean:  ## stop the embedded cluster and delete .dbops/
	-uv run dbops db stop
	rm -rf .dbops
