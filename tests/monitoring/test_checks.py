"""Checks are pure functions over canned snapshots; docs/checks.md stays in step with them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from dbops.config import Settings
from dbops.monitoring import CHECKS, Finding, Severity, Snapshot, evaluate
from dbops.monitoring.checks import worst
from dbops.monitoring.snapshot import Advice, IndexSuggestion, StatementGain
from tests.fixtures.snapshots import DEGRADED_EXPECTED

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = Settings(_env_file=None)
NO_ADVICE = Advice(suggestions=(), rejected=(), elapsed_ms=12.5)
SUGGESTION = IndexSuggestion(
    schema="public",
    table="orders",
    columns=("customer_id", "created_at"),
    using="btree",
    create_sql='CREATE INDEX CONCURRENTLY "orders_customer_id_created_at_idx" ON "public"."orders" '
    'USING btree ("customer_id", "created_at")',
    statements=(
        StatementGain(
            queryid=11,
            calls=500,
            mean_exec_time_ms=20.0,
            cost_before=900.0,
            cost_after=9.0,
            saved_ms=9_900.0,
        ),
        StatementGain(
            queryid=12,
            calls=10,
            mean_exec_time_ms=50.0,
            cost_before=1000.0,
            cost_after=10.0,
            saved_ms=495.0,
        ),
    ),
    saved_ms=10_395.0,
    write_ms=0.0,
    write_note=None,
    reason="the planner used the hypothetical index in 2 statements",
)


def _by_check(findings: list[Finding]) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in findings:
        out.setdefault(f.check, []).append(f)
    return out


def test_healthy_snapshot_is_ok_for_every_check(healthy: Snapshot) -> None:
    # Advice that ran and found nothing: every check, suggested_indexes included, is ok.
    findings = evaluate(dataclasses.replace(healthy, advice=NO_ADVICE), SETTINGS)
    assert [f.check for f in findings] == [c.id for c in CHECKS]
    assert {f.severity for f in findings} == {Severity.OK}
    assert worst(findings) is Severity.OK


def test_degraded_snapshot_fires_every_threshold(degraded: Snapshot) -> None:
    findings = evaluate(degraded, SETTINGS)
    got = {(f.check, str(f.severity), f.subject) for f in findings if f.severity != Severity.OK}
    assert got == DEGRADED_EXPECTED
    for f in findings:
        if f.severity != Severity.OK:
            assert f.hint, f"{f.check} has no fix hint"
    assert worst(findings) is Severity.CRITICAL
    # Index advice did not run (off by default): no suggested_indexes finding, not even ok.
    assert "suggested_indexes" not in _by_check(findings)


def test_partial_snapshot_reports_errors_and_skips_unknown_parts(partial: Snapshot) -> None:
    findings = _by_check(evaluate(partial, SETTINGS))
    errors = findings["collector_errors"]
    assert {f.subject for f in errors} == {"statements", "indexes", "database.sequences"}
    assert all(f.severity == Severity.WARNING for f in errors)
    assert "CREATE EXTENSION pg_stat_statements" in (
        next(f.hint for f in errors if f.subject == "statements") or ""
    )
    unknown = {
        "slow_queries",
        "statements_capacity",
        "suggested_indexes",
        "unused_indexes",
        "duplicate_indexes",
        "invalid_indexes",
        "sequences",
    }
    assert unknown.isdisjoint(findings), "unknown input must not be reported as ok"
    assert findings["wraparound"][0].severity == Severity.OK


def test_evaluate_is_pure(degraded: Snapshot) -> None:
    before = degraded.to_json()
    assert evaluate(degraded, SETTINGS) == evaluate(degraded, SETTINGS)
    assert degraded.to_json() == before


def test_thresholds_come_from_settings(degraded: Snapshot) -> None:
    lenient = Settings(
        _env_file=None,
        check_long_running_query_s=1_000.0,
        check_long_running_query_critical_s=2_000.0,
        check_slow_query_ms=1_000.0,
    )
    findings = _by_check(evaluate(degraded, lenient))
    assert [f.severity for f in findings["long_running_queries"]] == [Severity.OK]
    assert [f.severity for f in findings["slow_queries"]] == [Severity.OK]


def test_unused_index_size_floor(degraded: Snapshot) -> None:
    big_floor = Settings(_env_file=None, check_unused_index_min_bytes=10**9)
    findings = _by_check(evaluate(degraded, big_floor))
    assert [f.severity for f in findings["unused_indexes"]] == [Severity.OK]


def test_unique_and_primary_indexes_are_never_unused(healthy: Snapshot) -> None:
    assert healthy.indexes is not None
    idle = tuple(dataclasses.replace(ix, scans=0, size_bytes=10**7) for ix in healthy.indexes)
    findings = _by_check(evaluate(dataclasses.replace(healthy, indexes=idle), SETTINGS))
    assert [f.subject for f in findings["unused_indexes"]] == ["public.ix_users_email"]


def test_cache_hit_needs_enough_reads(degraded: Snapshot) -> None:
    assert degraded.database is not None
    few = dataclasses.replace(degraded.database, blks_hit=50, blks_read=50)
    findings = _by_check(evaluate(dataclasses.replace(degraded, database=few), SETTINGS))
    assert [f.severity for f in findings["cache_hit"]] == [Severity.OK]


def test_docs_list_every_check_and_threshold() -> None:
    text = (ROOT / "docs" / "checks.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, re.MULTILINE))
    assert documented == {c.id for c in CHECKS}
    named = {m.lower() for m in re.findall(r"`DBOPS_((?:CHECK|MONITOR|ADVICE)_[A-Z0-9_]+)`", text)}
    fields = {n for n in Settings.model_fields if n.startswith(("check_", "monitor_", "advice_"))}
    assert named - fields == set(), "docs/checks.md names settings that do not exist"
    assert fields - named == set(), "document these settings in docs/checks.md"
    for check in CHECKS:
        row = next(line for line in text.splitlines() if line.startswith(f"| `{check.id}` |"))
        for setting in check.settings:
            assert f"DBOPS_{setting.upper()}" in row, f"{check.id} row must name {setting}"


def test_suggested_indexes_warns_per_verified_suggestion(healthy: Snapshot) -> None:
    other = dataclasses.replace(
        SUGGESTION, table="teams", columns=("name",), create_sql="CREATE INDEX CONCURRENTLY x"
    )
    advice = Advice(suggestions=(SUGGESTION, other), rejected=(), elapsed_ms=40.0)
    findings = _by_check(evaluate(dataclasses.replace(healthy, advice=advice), SETTINGS))
    found = findings["suggested_indexes"]
    assert [f.severity for f in found] == [Severity.WARNING, Severity.WARNING]
    first = found[0]
    assert first.hint == SUGGESTION.create_sql
    assert '"public"."orders" (customer_id, created_at)' in first.message
    assert "10,395 ms" in first.message
    assert "2 statement(s)" in first.message
    assert first.subject == "public.orders(customer_id,created_at)"
    assert found[1].hint == "CREATE INDEX CONCURRENTLY x"
    assert worst(found) is Severity.WARNING  # advice never makes `dbops monitor checks` fail


def test_suggested_indexes_is_ok_when_advice_found_nothing_and_absent_when_not_run(
    healthy: Snapshot,
) -> None:
    ran = _by_check(evaluate(dataclasses.replace(healthy, advice=NO_ADVICE), SETTINGS))
    assert [f.severity for f in ran["suggested_indexes"]] == [Severity.OK]
    assert "suggested_indexes" not in _by_check(evaluate(healthy, SETTINGS))


def _access(healthy: Snapshot, app: int | None, server: int | None) -> Snapshot:
    acc = healthy.access
    assert acc is not None
    assert acc.app is not None
    assert acc.server is not None
    return dataclasses.replace(
        healthy,
        access=dataclasses.replace(
            acc,
            app=None if app is None else dataclasses.replace(acc.app, login_failed_recent=app),
            server=dataclasses.replace(acc.server, login_failed_recent=server),
        ),
    )


def test_failed_logins_warn_from_the_threshold_per_source(healthy: Snapshot) -> None:
    limit = SETTINGS.check_failed_logins_warning
    below = _by_check(evaluate(_access(healthy, limit - 1, limit - 1), SETTINGS))
    assert [f.severity for f in below["failed_logins"]] == [Severity.OK]
    at = _by_check(evaluate(_access(healthy, limit, limit - 1), SETTINGS))["failed_logins"]
    assert [(f.severity, f.subject) for f in at] == [(Severity.WARNING, "app")]
    assert f"{limit} sign-ins refused" in at[0].message
    assert "last 15 min" in at[0].message
    server = _by_check(evaluate(_access(healthy, None, limit), SETTINGS))["failed_logins"]
    assert [(f.severity, f.subject) for f in server] == [(Severity.WARNING, "server")]
    assert server[0].hint is not None
    assert "28P01" in server[0].hint


def test_failed_logins_unknown_is_no_finding(healthy: Snapshot) -> None:
    assert "failed_logins" not in _by_check(
        evaluate(dataclasses.replace(healthy, access=None), SETTINGS)
    )
    neither = _access(healthy, None, None)
    assert "failed_logins" not in _by_check(evaluate(neither, SETTINGS))
    strict = Settings(_env_file=None, check_failed_logins_warning=1)
    found = _by_check(evaluate(_access(healthy, 1, None), strict))["failed_logins"]
    assert [f.subject for f in found] == ["app"]  # the server's unknown count is not judged


def test_server_version_warns_outside_14_to_18(healthy: Snapshot) -> None:
    """The edges: 13.x and 19 warn, 14.0 and 18.x are fine; an unknown server says nothing."""
    base = healthy.server
    assert base is not None

    def severities(version: str, version_num: int) -> list[Severity]:
        server = dataclasses.replace(base, version=version, version_num=version_num)
        found = _by_check(evaluate(dataclasses.replace(healthy, server=server), SETTINGS))
        return [f.severity for f in found["server_version"]]

    assert severities("13.16", 130016) == [Severity.WARNING]
    assert severities("14.0", 140000) == [Severity.OK]
    assert severities("18.6", 180006) == [Severity.OK]
    assert severities("19devel", 190000) == [Severity.WARNING]
    found = _by_check(evaluate(dataclasses.replace(healthy, server=None), SETTINGS))
    assert "server_version" not in found
