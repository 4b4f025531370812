"""Is the schema ready to shard by tenant? The conditions of Citus, checked on the catalog.

Citus distributes a table by one column and keeps rows with the same value on the same node;
dbops' tenant is the team. So (docs/scale-out.md):

- **distributed** tables: ``teams`` by ``id`` and every table of ``public`` with a ``team_id``
  column, by ``team_id``, all co-located with ``teams``;
- **reference** tables (a copy on every node): the tables those point at that have no tenant
  (``users``: one person belongs to many teams);
- **local** tables stay on the coordinator: the other schemas (``audit``'s hash chain is one
  global order, ``archive``, ``dbops_monitor``, alembic's version table), and a table of
  ``public`` no distributed table reaches.

The rules Citus enforces, each a :class:`Finding` when broken: a distributed table's primary key
and every unique constraint or unique index include its distribution column (a node can only
check uniqueness among its own rows); a foreign key between distributed tables joins their
distribution columns (co-location); a reference table has no foreign key to a distributed one.
:func:`shard_plan` prints the Citus calls, and the schema changes the findings ask for first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

__all__ = [
    "TENANT_COLUMN",
    "Finding",
    "PartitionProof",
    "ShardCheck",
    "TableRole",
    "check_sharding",
    "prove_partitioning",
    "shard_plan",
]

#: The tenant key of every tenant table; ``teams`` carries it as its ``id``.
TENANT_COLUMN = "team_id"
TENANT_TABLE = "teams"

#: Per table of ``public``: its columns, primary key, unique keys and foreign keys.
CATALOG_SQL = """
SELECT c.relname AS table_name,
       ARRAY(SELECT a.attname::text FROM pg_attribute AS a
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum) AS columns,
       ARRAY(SELECT i.indexrelid::regclass::text || ':' || i.indisprimary::text || ':' ||
                    array_to_string(ARRAY(SELECT a.attname::text
                                          FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
                                          JOIN pg_attribute AS a
                                            ON a.attrelid = c.oid AND a.attnum = k.attnum
                                          ORDER BY k.n), ',')
             FROM pg_index AS i
             WHERE i.indrelid = c.oid AND (i.indisunique OR i.indisprimary)
             ORDER BY 1) AS unique_keys,
       ARRAY(SELECT f.conname::text || ':' || f.confrelid::regclass::text || ':' ||
                    array_to_string(ARRAY(SELECT a.attname::text
                                          FROM unnest(f.conkey) WITH ORDINALITY AS k(attnum, n)
                                          JOIN pg_attribute AS a
                                            ON a.attrelid = c.oid AND a.attnum = k.attnum
                                          ORDER BY k.n), ',') || ':' ||
                    array_to_string(ARRAY(SELECT a.attname::text
                                          FROM unnest(f.confkey) WITH ORDINALITY AS k(attnum, n)
                                          JOIN pg_attribute AS a
                                            ON a.attrelid = f.confrelid AND a.attnum = k.attnum
                                          ORDER BY k.n), ',')
             FROM pg_constraint AS f
             WHERE f.conrelid = c.oid AND f.contype = 'f'
             ORDER BY 1) AS foreign_keys
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname <> 'alembic_version'
  AND NOT EXISTS (SELECT 1 FROM pg_depend AS d
                  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY c.relname
"""


@dataclass(frozen=True)
class TableRole:
    """Where a table goes: ``distributed`` by ``column``, ``reference``, or ``local``."""

    table: str
    role: str
    column: str | None = None


@dataclass(frozen=True)
class Finding:
    """A rule the schema breaks, on ``table`` (``key``: the constraint or index), and the fix."""

    table: str
    key: str
    problem: str
    fix: str


@dataclass(frozen=True)
class ShardCheck:
    """The tables' roles and what stands between the schema and Citus."""

    roles: tuple[TableRole, ...]
    findings: tuple[Finding, ...]

    @property
    def ready(self) -> bool:
        """No finding: ``shard_plan``'s Citus calls would run as they are."""
        return not self.findings


@dataclass(frozen=True)
class _Table:
    name: str
    columns: tuple[str, ...]
    unique_keys: tuple[tuple[str, bool, tuple[str, ...]], ...]  # name, primary, columns
    foreign_keys: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...]


def _split(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(",") if v)


def _tables(conn: psycopg.Connection[Any]) -> list[_Table]:
    out = []
    for name, columns, uniques, fks in conn.execute(CATALOG_SQL):
        unique_keys = []
        for item in uniques:
            index, primary, cols = item.rsplit(":", 2)
            unique_keys.append((index, primary == "true", _split(cols)))
        foreign_keys = []
        for item in fks:
            constraint, target, cols, ref_cols = item.split(":")
            foreign_keys.append((constraint, target, _split(cols), _split(ref_cols)))
        out.append(_Table(name, tuple(columns), tuple(unique_keys), tuple(foreign_keys)))
    return out


def _roles(tables: Sequence[_Table]) -> dict[str, TableRole]:
    roles: dict[str, TableRole] = {}
    for t in tables:
        if t.name == TENANT_TABLE:
            roles[t.name] = TableRole(t.name, "distributed", "id")
        elif TENANT_COLUMN in t.columns:
            roles[t.name] = TableRole(t.name, "distributed", TENANT_COLUMN)
    # Reference tables: what the distributed tables point at, and what those point at in turn
    # (a reference table may only point at reference tables).
    by_name = {t.name: t for t in tables}
    pending = [target for t in tables if t.name in roles for _, target, _, _ in t.foreign_keys]
    while pending:
        name = pending.pop()
        if name not in roles and name in by_name:
            roles[name] = TableRole(name, "reference")
            pending += [target for _, target, _, _ in by_name[name].foreign_keys]
    for t in tables:
        roles.setdefault(t.name, TableRole(t.name, "local"))  # on the coordinator only
    return roles


def check_sharding(conn: psycopg.Connection[Any]) -> ShardCheck:
    """The tables of ``public`` by role, and every Citus rule the schema breaks."""
    tables = _tables(conn)
    roles = _roles(tables)
    findings: list[Finding] = []
    for t in tables:
        role = roles[t.name]
        if role.role == "distributed":
            assert role.column is not None
            for index, primary, cols in t.unique_keys:
                if role.column in cols:
                    continue
                kind = "primary key" if primary else "unique key"
                findings.append(
                    Finding(
                        t.name,
                        index,
                        f"{kind} ({', '.join(cols)}) lacks the distribution column "
                        f"{role.column}: a node can only check uniqueness among its own rows",
                        f"make it ({role.column}, {', '.join(cols)})"
                        if primary
                        else "add the distribution column to it, or keep this uniqueness in "
                        f"a reference table (one row per value, pointing at the {TENANT_TABLE})",
                    )
                )
        for constraint, target, cols, ref_cols in t.foreign_keys:
            target_role = roles.get(target)
            if target_role is None or target_role.role != "distributed":
                continue
            if role.role != "distributed":
                findings.append(
                    Finding(
                        t.name,
                        constraint,
                        f"{role.role} table {t.name} points at distributed table {target}",
                        "drop the foreign key, or distribute the table by the tenant",
                    )
                )
                continue
            pairs = dict(zip(ref_cols, cols, strict=True))
            if pairs.get(target_role.column or "") != role.column:
                findings.append(
                    Finding(
                        t.name,
                        constraint,
                        f"foreign key ({', '.join(cols)}) -> {target} ({', '.join(ref_cols)}) "
                        "does not join the distribution columns: the rows may sit on "
                        "different nodes",
                        f"include {role.column} -> {target}.{target_role.column} in the key",
                    )
                )
    ordered = sorted(
        roles.values(),
        key=lambda r: ({"distributed": 0, "reference": 1, "local": 2}[r.role], r.table),
    )
    return ShardCheck(tuple(ordered), tuple(findings))


def shard_plan(check: ShardCheck) -> list[str]:
    """The statements that shard the schema with Citus.

    First the fixes the findings ask for, as comments (each needs a migration), then the
    reference tables, the tenant table, and the tables co-located with it.
    """
    lines = [f"-- {f.table}.{f.key}: {f.problem}; fix: {f.fix}" for f in check.findings]
    for role in check.roles:
        if role.role == "reference":
            lines.append(f"SELECT create_reference_table('public.{role.table}');")
    for role in check.roles:
        if role.role == "distributed" and role.table == TENANT_TABLE:
            lines.append(
                f"SELECT create_distributed_table('public.{role.table}', '{role.column}');"
            )
    for role in check.roles:
        if role.role == "distributed" and role.table != TENANT_TABLE:
            lines.append(
                f"SELECT create_distributed_table('public.{role.table}', '{role.column}', "
                f"colocate_with => 'public.{TENANT_TABLE}');"
            )
    return lines


# ------------------------------------------------------------------ the partitioning proof
@dataclass(frozen=True)
class PartitionProof:
    """What :func:`prove_partitioning` saw: one tenant's reads on a hash-partitioned copy.

    ``planned_partitions``: partitions in the plan of the tenant query with its team as a
    literal (plan-time pruning: 1). ``removed_at_run``: partitions a generic prepared plan
    (``$1``) skipped when it ran (run-time pruning: ``partitions - 1``). The timings are the
    median of the same query on ``team_members`` and on the copy.
    """

    partitions: int
    team_id: str
    team_rows: int
    planned_partitions: int
    removed_at_run: int
    plain_median_us: float
    partitioned_median_us: float


PROOF_SETUP_SQL = (
    "CREATE TEMP TABLE p_team_members (LIKE public.team_members INCLUDING DEFAULTS) "
    "PARTITION BY HASH (team_id)"
)
PROOF_PARTITION_SQL = (
    "CREATE TEMP TABLE p_team_members_{n} PARTITION OF p_team_members "
    "FOR VALUES WITH (MODULUS {m}, REMAINDER {n})"
)
PROOF_LOAD_SQL = "INSERT INTO p_team_members SELECT * FROM public.team_members"
PROOF_KEY_SQL = "ALTER TABLE p_team_members ADD PRIMARY KEY (team_id, user_id)"
BIGGEST_TEAM_SQL = """
SELECT team_id::text, count(*) FROM public.team_members GROUP BY team_id ORDER BY 2 DESC, 1
LIMIT 1
"""
TENANT_QUERY = "SELECT user_id, role FROM {table} WHERE team_id = {team}"


def _plan_relations(plan: dict[str, Any]) -> list[str]:
    found = [plan["Relation Name"]] if "Relation Name" in plan else []
    for child in plan.get("Plans", ()):
        found += _plan_relations(child)
    return found


def _removed(plan: dict[str, Any]) -> int:
    return int(plan.get("Subplans Removed", 0)) + sum(_removed(c) for c in plan.get("Plans", ()))


def prove_partitioning(
    conn: psycopg.Connection[Any], *, partitions: int = 8, runs: int = 200
) -> PartitionProof:
    """A tenant's query on a copy of ``team_members`` hash-partitioned by team: one partition.

    The copy is a temporary table; the plan shows which partitions the query reads, and the
    same query is timed on the table and on the copy. Everything is temporary and in one
    transaction that is rolled back: the database is left as it was. Needs a role that reads
    every membership (the administrator: row-level security hides other tenants' rows from
    the app role).
    """
    import statistics
    import time

    from psycopg import sql

    if not 2 <= partitions <= 64:
        raise ValueError("partitions must be 2 to 64")
    with conn.transaction(force_rollback=True):
        row = conn.execute(BIGGEST_TEAM_SQL).fetchone()
        if row is None:
            raise ValueError("team_members is empty: seed demo data first (dbops seed)")
        team_id, team_rows = str(row[0]), int(row[1])
        conn.execute(PROOF_SETUP_SQL)
        for n in range(partitions):
            conn.execute(sql.SQL(PROOF_PARTITION_SQL.format(n=n, m=partitions)))
        conn.execute(PROOF_LOAD_SQL)
        conn.execute(PROOF_KEY_SQL)
        conn.execute("ANALYZE p_team_members")
        literal = sql.Literal(team_id)
        tenant = sql.SQL(TENANT_QUERY).format(table=sql.Identifier("p_team_members"), team=literal)
        explained = conn.execute(sql.SQL("EXPLAIN (FORMAT JSON) ") + tenant).fetchone()
        assert explained is not None  # EXPLAIN always returns its plan
        plan = explained[0]
        planned = {r for r in _plan_relations(plan[0]["Plan"]) if r.startswith("p_team_members_")}
        conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.execute(
            "PREPARE dbops_shard_proof (uuid) AS "
            "SELECT user_id, role FROM p_team_members WHERE team_id = $1"
        )
        ran = conn.execute(
            sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE dbops_shard_proof ({}::uuid)").format(
                literal
            )
        ).fetchone()
        assert ran is not None
        run = ran[0]
        conn.execute("DEALLOCATE dbops_shard_proof")

        def median_us(table: str) -> float:
            query = sql.SQL(TENANT_QUERY).format(table=sql.SQL(table), team=sql.Placeholder())
            times = []
            for _ in range(runs):
                started = time.perf_counter_ns()
                conn.execute(query, (team_id,), prepare=True).fetchall()
                times.append((time.perf_counter_ns() - started) / 1000)
            return round(statistics.median(times), 1)

        plain = median_us("public.team_members")
        partitioned = median_us("p_team_members")
    return PartitionProof(
        partitions=partitions,
        team_id=team_id,
        team_rows=team_rows,
        planned_partitions=len(planned),
        removed_at_run=_removed(run[0]["Plan"]),
        plain_median_us=plain,
        partitioned_median_us=partitioned,
    )
