"""``plan(snapshot, settings)`` is pure: canned snapshots in, ordered actions with reasons out."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest

from dbops.config import Settings
from dbops.errors import InvalidInput
from dbops.monitoring.maintenance import MaintenancePlan, plan
from dbops.monitoring.snapshot import IndexStat, Snapshot, TableStat
from dbops.ops.maintenance import ActionKind
from tests.fixtures.snapshots import TAKEN_AT, degraded_snapshot, healthy_snapshot

SETTINGS = Settings(_env_file=None)


def table(
    name: str,
    *,
    live: int = 100_000,
    dead: int = 0,
    modified: int | None = 0,
    table_bytes: int = 10_000_000,
    vacuumed_days_ago: float | None = 1.0,
    analyzed: bool = True,
) -> TableStat:
    vacuumed = None if vacuumed_days_ago is None else TAKEN_AT - timedelta(days=vacuumed_days_ago)
    return TableStat(
        schema="public",
        name=name,
        live_rows=live,
        dead_rows=dead,
        seq_scans=0,
        seq_tuples_read=0,
        index_scans=0,
        table_bytes=table_bytes,
        indexes_bytes=0,
        toast_bytes=0,
        total_bytes=table_bytes,
        heap_blks_hit=None,
        heap_blks_read=None,
        modifications_since_analyze=modified,
        last_vacuum=None,
        last_autovacuum=vacuumed,
        last_analyze=TAKEN_AT if analyzed else None,
        last_autoanalyze=None,
    )


def index(name: str, *, table_name: str = "t", **kw: object) -> IndexStat:
    values: dict[str, object] = {
        "schema": "public",
        "table": table_name,
        "name": name,
        "method": "btree",
        "definition": f"CREATE INDEX {name} ON public.{table_name} USING btree (x)",
        "size_bytes": 100_000_000,
        "scans": 10,
        "tuples_read": 10,
        "is_unique": False,
        "is_primary": False,
        "is_valid": True,
        "is_constraint": False,
        "bloat_bytes": 0,
    }
    values.update(kw)
    return IndexStat(**values)  # type: ignore[arg-type]


def snap(
    tables: tuple[TableStat, ...] | None = (), indexes: tuple[IndexStat, ...] | None = ()
) -> Snapshot:
    base = healthy_snapshot()
    assert base.database is not None
    return dataclasses.replace(
        base,
        tables=tables,
        indexes=indexes,
        database=dataclasses.replace(base.database, sequences=()),
    )


def kinds(p: MaintenancePlan) -> list[tuple[str, str]]:
    return [(str(a.kind), a.target) for a in p.actions]


# ------------------------------------------------------------------------------ tables
def test_healthy_snapshot_needs_nothing() -> None:
    p = plan(healthy_snapshot(), SETTINGS)
    assert p.actions == ()
    assert p.unknown == ()
    assert p.taken_at == TAKEN_AT


def test_dead_rows_over_the_ratio_get_vacuum() -> None:
    p = plan(snap((table("t", live=9_000, dead=1_000),)), SETTINGS)
    (action,) = p.actions
    assert action.kind is ActionKind.VACUUM
    assert action.reason == "1,000 dead rows (10.0% of rows)"
    assert action.sql == 'VACUUM "public"."t"'
    assert action.estimated_bytes == 1_000_000  # a tenth of the table's bytes


def test_dead_rows_below_the_thresholds_need_nothing() -> None:
    below_count = table("a", live=100, dead=SETTINGS.maintain_dead_rows_min - 1)
    below_ratio = table("b", live=1_000_000, dead=5_000)  # 0.5 %, vacuumed yesterday
    assert plan(snap((below_count, below_ratio)), SETTINGS).actions == ()


def test_old_vacuum_with_dead_rows_gets_vacuum_whatever_the_ratio() -> None:
    old = table("old", live=1_000_000, dead=5_000, vacuumed_days_ago=30)
    never = table("never", live=1_000_000, dead=5_000, vacuumed_days_ago=None)
    p = plan(snap((old, never)), SETTINGS)
    reasons = {a.table: a.reason for a in p.actions}
    assert reasons == {
        "old": "5,000 dead rows (0.5%), last vacuum 30 days ago",
        "never": "5,000 dead rows (0.5%), never vacuumed",
    }


def test_stale_and_missing_statistics_get_analyze() -> None:
    stale = table("stale", live=10_000, modified=5_000)
    fresh = table("fresh", live=1_000, modified=500)  # 50 %, but under maintain_analyze_rows_min
    big = table("big", live=1_000_000, modified=20_000)  # 2 % < maintain_analyze_ratio
    never = table("never", live=5_000, modified=0, analyzed=False)
    tiny = table("tiny", live=1, modified=1, analyzed=False)  # like alembic_version
    empty = table("empty", live=0, modified=0, analyzed=False)
    p = plan(snap((stale, fresh, big, never, tiny, empty)), SETTINGS)
    assert kinds(p) == [("analyze", "public.never"), ("analyze", "public.stale")]
    reasons = {a.table: a.reason for a in p.actions}
    assert reasons["stale"] == "5,000 rows modified since the last analyze (50.0% of live rows)"
    assert reasons["never"].startswith("never analyzed")


def test_both_needs_are_one_vacuum_analyze() -> None:
    p = plan(snap((table("t", live=9_000, dead=1_000, modified=5_000),)), SETTINGS)
    (action,) = p.actions
    assert action.kind is ActionKind.VACUUM_ANALYZE
    assert action.sql == 'VACUUM (ANALYZE) "public"."t"'
    assert "dead rows" in action.reason
    assert "modified since the last analyze" in action.reason


# ------------------------------------------------------------------------------ indexes
def test_invalid_index_gets_reindex_first() -> None:
    p = plan(
        snap(
            (table("t", live=9_000, dead=1_000),),
            (index("t_ok"), index("t_broken", is_valid=False, bloat_bytes=None)),
        ),
        SETTINGS,
    )
    assert kinds(p) == [("reindex", "public.t_broken"), ("vacuum", "public.t")]
    assert p.actions[0].sql == 'REINDEX INDEX CONCURRENTLY "public"."t_broken"'
    assert p.actions[0].reason.startswith("invalid")


def test_bloated_index_gets_reindex_by_the_ratio_and_size() -> None:
    bloated = index("t_bloated", bloat_bytes=40_000_000)
    small = index("t_small", size_bytes=1_000_000, bloat_bytes=900_000)  # under 10 MB of bloat
    lean = index("t_lean", bloat_bytes=20_000_000)  # 20 % < 30 %
    unknown = index("t_gist", method="gist", bloat_bytes=None)
    p = plan(snap((), (bloated, small, lean, unknown)), SETTINGS)
    (action,) = p.actions
    assert (action.kind, action.index) == (ActionKind.REINDEX, "t_bloated")
    assert action.reason == "estimated bloat 40,000,000 of 100,000,000 bytes (40.0%)"
    assert action.estimated_bytes == 40_000_000


def test_reindex_leftover_is_advice_to_drop_never_a_rebuild() -> None:
    p = plan(snap((), (index("t_x_ccnew", is_valid=False),)), SETTINGS)
    (action,) = p.actions
    assert action.kind is ActionKind.ADVISORY
    assert not action.runs
    assert action.sql == 'DROP INDEX CONCURRENTLY "public"."t_x_ccnew"'
    assert p.runnable == ()


# ------------------------------------------------------------------------------ sequences
def test_sequences_near_their_maximum_are_advisories_from_the_check_threshold() -> None:
    p = plan(degraded_snapshot(), SETTINGS)
    advisories = [a for a in p.actions if a.kind is ActionKind.ADVISORY and a.sequence]
    # 0.93 and 0.79 are both over check_sequence_warning (0.75); the fuller one comes first.
    assert [a.sequence for a in advisories] == ["users_n_seq", "jobs_id_seq"]
    first = advisories[0]
    assert first.sql == 'ALTER SEQUENCE "public"."users_n_seq" AS bigint'
    assert first.reason == "sequence has used 93.0% of its range (column users.n is integer)"
    assert first.note is not None
    assert "ALTER COLUMN n TYPE bigint" in first.note
    stricter = Settings(_env_file=None, check_sequence_warning=0.9)
    assert [a.sequence for a in plan(degraded_snapshot(), stricter).actions if a.sequence] == [
        "users_n_seq"
    ]


# ------------------------------------------------------------------------------ ordering
def test_order_is_by_benefit() -> None:
    p = plan(
        snap(
            (
                table("small_dead", live=9_000, dead=1_000, table_bytes=1_000_000),
                table("big_dead", live=9_000, dead=1_000, table_bytes=500_000_000),
                table("stale", live=10_000, modified=9_000),
            ),
            (
                index("t_bloated", bloat_bytes=40_000_000),
                index("t_broken", is_valid=False, size_bytes=8_192),  # small, still first
                index("t_x_ccold", is_valid=False),
            ),
        ),
        SETTINGS,
    )
    assert kinds(p) == [
        ("reindex", "public.t_broken"),  # invalid first
        ("vacuum", "public.big_dead"),  # 50 MB back
        ("reindex", "public.t_bloated"),  # 40 MB back
        ("vacuum", "public.small_dead"),  # 100 kB back
        ("analyze", "public.stale"),
        ("advisory", "public.t_x_ccold"),
    ]


def test_unknown_sections_are_named() -> None:
    base = healthy_snapshot()
    p = plan(dataclasses.replace(base, tables=None, indexes=None, database=None), SETTINGS)
    assert p.actions == ()
    assert p.unknown == ("tables", "indexes", "sequences")


def test_plan_survives_a_json_round_trip() -> None:
    s = snap((table("t", live=9_000, dead=1_000),), (index("t_broken", is_valid=False),))
    assert plan(Snapshot.from_json(s.to_json()), SETTINGS) == plan(s, SETTINGS)


# ------------------------------------------------------------------------------ filters
def test_only_filters_by_kind_and_table() -> None:
    p = plan(
        snap(
            (table("a", live=9_000, dead=1_000), table("b", live=10_000, modified=9_000)),
            (index("a_broken", table_name="a", is_valid=False),),
        ),
        SETTINGS,
    )
    assert kinds(p.only(["vacuum"])) == [("vacuum", "public.a")]
    assert kinds(p.only(table="a")) == [("reindex", "public.a_broken"), ("vacuum", "public.a")]
    assert kinds(p.only(["analyze"], table="public.b")) == [("analyze", "public.b")]
    assert p.only(["analyze"], table="a").actions == ()
    with pytest.raises(InvalidInput, match="unknown maintenance kind 'vacum'"):
        p.only(["vacum"])


def test_json_has_every_action_with_its_sql() -> None:
    p = plan(snap((table("t", live=9_000, dead=1_000),)), SETTINGS)
    document = json.loads(p.to_json())
    assert document["taken_at"] == TAKEN_AT.isoformat()
    (action,) = document["actions"]
    assert action["kind"] == "vacuum"
    assert action["sql"] == 'VACUUM "public"."t"'
    assert action["runs"] is True
