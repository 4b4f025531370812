# One task runner for people and CI. `make run` and `make test` are the README's quick start.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# uv from PATH, or the one scripts/bootstrap.sh installs with pip (no PATH/shim refresh needed).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: help setup run test test-versions lint wheel-check format bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

setup:  ## system packages (PostGIS), uv and the locked Python environment
	@scripts/bootstrap.sh

run: setup  ## embedded PostgreSQL + migrations + demo data, then workload, exporter, dashboard (Ctrl-C stops)
	$(UV) run dbops up --serve

test: setup  ## the test suite (all but `scale`: make test-scale) against private PostgreSQL clusters
	$(UV) run pytest

# The version-sensitive tests (docs/versions.md): migrations, collectors, checks, history,
# the exporter with a real Prometheus, roles and row-level security, search with and without
# PostGIS, backups and restore drills.
VERSION_TESTS := tests/migrations tests/monitoring tests/exporter/test_live.py \
	tests/services/test_rls.py tests/services/test_rls_hardening.py \
	tests/services/test_member_counts.py tests/services/test_search_geo.py \
	tests/ops/backup/test_backup.py \
	tests/ops/test_role_secrets.py tests/db/test_embedded.py
PG_VERSIONS ?= 14 16 17 18

test-versions: setup  ## the version-sensitive tests on PostgreSQL 14, 16, 17, 18 (15 is `make test`)
	@set -e; for v in $(PG_VERSIONS); do \
		echo "== PostgreSQL $$v: $$($(UV) run dbops db binaries $$v)"; \
		DBOPS_PG_VERSION=$$v $(UV) run pytest -q -rs $(VERSION_TESTS); \
	done

test-scale: setup  ## the scale-out engines: replicas, PgBouncer, Patroni failover (docs/scale-out.md)
	$(UV) run pytest -m scale

lint: setup  ## ruff, mypy, import contracts, squawk on every migration's SQL, alert rules
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	$(UV) run lint-imports
	$(UV) run nbstripout --verify notebooks/*.ipynb
	$(UV) run python scripts/lint_migrations.py
	cd deploy/prometheus && promtool check rules alerts.yml && promtool test rules alerts_test.yml

wheel-check: setup  ## build the wheel, install it outside the repo, migrate a throwaway cluster
	scripts/check_wheel.sh

format:  ## apply ruff's fixes and formatting
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

bench: setup  ## benchmarks (results go to docs/benchmarks.md)
	$(UV) run python -m bench.bench_seed
	$(UV) run python -m bench.bench_services --scale-check
	$(UV) run python -m bench.bench_rls
	$(UV) run python -m bench.bench_throughput
	$(UV) run python -m bench.bench_crypto

clean:  ## stop the embedded cluster and delete .dbops/
	-$(UV) run dbops db stop
	rm -rf .dbops
