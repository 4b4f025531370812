"""Index advice the planner has verified: candidates from the slow statements, proven with hypopg.

From the top statements (``pg_stat_statements`` text with ``$n`` parameters) :func:`advise`
derives btree candidates from single-table predicates (``=``, ranges, ``IN``, ``IS NULL``) and
``ORDER BY`` (equality columns first, then one range or the order columns), parsed with pglast.
Candidates are merged across the workload (one index whose leading columns serve several
statements), then each is proven with a hypothetical index (hypopg): the generic plan of every
statement it could serve is costed before and after, and the candidate is kept only for the
statements whose plan uses it and whose cost falls by ``advice_min_cost_factor``. A greedy pass
ranks by the execution time it would save (calls x relative cost cut x mean time), net of the
extra write time when UPDATE statements of the workload set an indexed column (no more HOT
updates). Everything runs in one transaction that is rolled back, under ``statement_timeout``,
with the hypothetical indexes reset. Data shapes here are stdlib-only frozen dataclasses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, NullTestType
from pglast.stream import RawStream
from psycopg import sql
from psycopg.rows import class_row

from dbops.config import AdviceSettings, Settings
from dbops.monitoring._fetch import SET_LOCAL_TIMEOUT_SQL, CollectorUnavailable, fetch_one
from dbops.monitoring.snapshot import (
    Advice,
    IndexSuggestion,
    QueryStat,
    Rejection,
    StatementGain,
)

__all__ = [
    "Advice",
    "IndexSuggestion",
    "Rejection",
    "StatementGain",
    "advise",
    "advise_report",
    "cuts_enough",
]

INSTALL_HINT = (
    "CREATE EXTENSION hypopg; (the server needs the hypopg package, "
    "e.g. Debian/Ubuntu postgresql-NN-hypopg for server version NN)"
)

HYPOPG_SQL = """
SELECT extversion AS version FROM pg_extension WHERE extname = 'hypopg'
"""

SERVER_VERSION_SQL = """
SELECT current_setting('server_version_num')::int AS version_num
"""

RELATION_SQL = """
SELECT c.oid::bigint AS oid, n.nspname::text AS schema, c.relname::text AS table
FROM pg_class AS c
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(%(name)s) AND c.relkind IN ('r', 'p', 'm')
"""

COLUMNS_SQL = """
SELECT a.attname::text AS column
FROM pg_attribute AS a
WHERE a.attrelid = %(oid)s AND a.attnum > 0 AND NOT a.attisdropped
"""

#: Leading columns of the valid, non-partial, non-expression indexes of a table.
LEADING_COLUMNS_SQL = """
SELECT DISTINCT a.attname::text AS column
FROM pg_index AS i
JOIN pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = %(oid)s AND i.indisvalid AND i.indpred IS NULL
"""

TABLE_WRITES_SQL = """
SELECT coalesce(s.n_tup_ins, 0) AS inserts,
       coalesce(s.n_tup_upd, 0) AS updates,
       coalesce(s.n_tup_hot_upd, 0) AS hot_updates,
       coalesce(s.n_tup_del, 0) AS deletes
FROM pg_stat_user_tables AS s
WHERE s.relid = %(oid)s
"""

HYPO_RESET_SQL = "SELECT hypopg_reset()"
HYPO_CREATE_SQL = (
    "SELECT indexrelid::bigint AS oid, indexname::text AS name FROM hypopg_create_index(%(ddl)s)"
)
HYPO_DROP_SQL = "SELECT hypopg_drop_index(%(oid)s)"
GENERIC_PLAN_MODE_SQL = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"
PREPARE_SQL = "PREPARE {} AS {}"
EXECUTE_EXPLAIN_SQL = "EXPLAIN (FORMAT JSON) EXECUTE {}{}"
DEALLOCATE_SQL = "DEALLOCATE {}"
GENERIC_EXPLAIN_SQL = "EXPLAIN (GENERIC_PLAN, FORMAT JSON) {}"
HYPO_DDL_SQL = "CREATE INDEX ON {} USING btree ({})"
CREATE_INDEX_SQL = "CREATE INDEX CONCURRENTLY {} ON {} USING btree ({})"

_PREPARED_NAME = "dbops_advice_plan"
_EQUALITY_OPS = frozenset({"="})
_RANGE_OPS = frozenset({"<", ">", "<=", ">="})


# ------------------------------------------------------------------------------ internals
@dataclass(frozen=True)
class _Relation:
    oid: int
    schema: str
    table: str


@dataclass(frozen=True)
class _Column:
    column: str


@dataclass(frozen=True)
class _Version:
    version: str


@dataclass(frozen=True)
class _ServerVersion:
    version_num: int


def cuts_enough(before: float, after: float, factor: float) -> bool:
    """Whether a plan cost falling from ``before`` to ``after`` is a cut by ``factor`` or more.

    "At least this factor" (``advice_min_cost_factor``): a cut of exactly ``factor`` counts.
    A non-positive cost after is no measurement, never a cut.
    """
    return after > 0 and before / after >= factor


@dataclass(frozen=True)
class _Writes:
    inserts: int
    updates: int
    hot_updates: int
    deletes: int


@dataclass(frozen=True)
class _Hypo:
    oid: int
    name: str


@dataclass
class _Parsed:
    """One parsed statement: its table, predicate columns, and re-deparsed text."""

    stat: QueryStat
    schema: str | None
    table: str
    text: str
    params: int
    equality: list[str] = field(default_factory=list)
    ranges: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    updates: list[str] = field(default_factory=list)
    kind: str = "select"


class _Skip(Exception):
    """A statement the advisor cannot use; the message says why."""


def _walk(node: Any) -> Iterator[Any]:
    if isinstance(node, tuple | list):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, ast.Node):
        yield node
        for name in getattr(type(node), "__slots__", ()):
            yield from _walk(getattr(node, name, None))


def _column_name(node: Any, names: set[str]) -> str | None:
    """``col`` or ``alias.col`` of the statement's one table, else ``None``."""
    if not isinstance(node, ast.ColumnRef):
        return None
    fields: tuple[Any, ...] = node.fields or ()
    parts = [str(f.sval) for f in fields if isinstance(f, ast.String)]
    if len(parts) != len(fields):
        return None  # a.* or similar
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2 and parts[0] in names:
        return parts[1]
    return None


def _is_value(node: Any) -> bool:
    """A parameter or constant (possibly cast): something fixed during one execution."""
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return isinstance(node, ast.ParamRef | ast.A_Const)


def _predicates(where: Any, names: set[str], parsed: _Parsed) -> None:
    if where is None:
        return
    if isinstance(where, ast.BoolExpr):
        if where.boolop == BoolExprType.AND_EXPR:
            for arg in where.args or ():
                _predicates(arg, names, parsed)
        return  # OR / NOT: no single index column to propose
    if isinstance(where, ast.NullTest):
        column = _column_name(where.arg, names)
        if column and where.nulltesttype == NullTestType.IS_NULL:
            parsed.equality.append(column)
        return
    if not isinstance(where, ast.A_Expr):
        return
    last = where.name[-1] if where.name else None
    op = str(last.sval) if isinstance(last, ast.String) else ""
    left, right = where.lexpr, where.rexpr
    column = _column_name(left, names)
    value: Any = right
    if column is None and where.kind == A_Expr_Kind.AEXPR_OP:
        column, value = _column_name(right, names), left
        op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
    if column is None:
        return
    if where.kind == A_Expr_Kind.AEXPR_OP and _is_value(value):
        if op in _EQUALITY_OPS:
            parsed.equality.append(column)
        elif op in _RANGE_OPS:
            parsed.ranges.append(column)
    elif where.kind == A_Expr_Kind.AEXPR_OP_ANY and op in _EQUALITY_OPS and _is_value(value):
        parsed.equality.append(column)
    elif not isinstance(value, tuple | list) or not all(_is_value(v) for v in value):
        return
    elif where.kind == A_Expr_Kind.AEXPR_IN and op == "=":
        parsed.equality.append(column)
    elif where.kind == A_Expr_Kind.AEXPR_BETWEEN:
        parsed.ranges.append(column)


def _parse(stat: QueryStat) -> _Parsed:
    """Parse one statement; raises :class:`_Skip` with the reason when it is not usable."""
    if not stat.query:
        raise _Skip("no query text")
    try:
        statements = parse_sql(stat.query)
    except Exception as exc:  # pglast.parser.ParseError, or text cut by the collector
        raise _Skip(f"pglast cannot parse it: {exc}") from exc
    if len(statements) != 1:
        raise _Skip("not exactly one statement")
    stmt: Any = statements[0].stmt
    relation: Any
    if isinstance(stmt, ast.SelectStmt):
        if stmt.larg is not None:
            raise _Skip("set operation (UNION/INTERSECT/EXCEPT)")
        if stmt.withClause is not None:
            raise _Skip("WITH query")
        from_clause = stmt.fromClause or ()
        if len(from_clause) != 1 or not isinstance(from_clause[0], ast.RangeVar):
            raise _Skip("not a single-table query")
        relation, where, kind = from_clause[0], stmt.whereClause, "select"
    elif isinstance(stmt, ast.UpdateStmt | ast.DeleteStmt):
        if stmt.withClause is not None:
            raise _Skip("WITH query")
        using = stmt.fromClause if isinstance(stmt, ast.UpdateStmt) else stmt.usingClause
        if using:
            raise _Skip("not a single-table statement")
        relation, where = stmt.relation, stmt.whereClause
        kind = "update" if isinstance(stmt, ast.UpdateStmt) else "delete"
    else:
        raise _Skip(f"{type(stmt).__name__} is not SELECT, UPDATE or DELETE")
    names = {str(relation.relname)}
    if relation.alias is not None:
        names = {str(relation.alias.aliasname)}
    params = max(
        (int(n.number or 0) for n in _walk(stmt) if isinstance(n, ast.ParamRef)),
        default=0,
    )
    parsed = _Parsed(
        stat=stat,
        schema=relation.schemaname or None,
        table=str(relation.relname),
        text=RawStream()(stmt),  # re-deparsed: one statement, whatever the original held
        params=params,
        kind=kind,
    )
    _predicates(where, names, parsed)
    if isinstance(stmt, ast.SelectStmt):
        for sort in stmt.sortClause or ():
            column = _column_name(sort.node, names)
            if column is None:
                break  # an expression or output alias ends the usable order prefix
            parsed.order.append(column)
    if isinstance(stmt, ast.UpdateStmt):
        parsed.updates = [
            str(t.name) for t in stmt.targetList or () if isinstance(t, ast.ResTarget) and t.name
        ]
    return parsed


def _dedupe(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _candidates(parsed: _Parsed, columns: set[str], leading: set[str]) -> list[tuple[str, ...]]:
    """Column lists for one statement: equality columns first, then one range, or the order.

    Equality columns are sorted by name so that statements filtering on the same set share one
    candidate. A candidate never starts with a column an existing index already leads with.
    """
    equality = sorted(c for c in _dedupe(parsed.equality) if c in columns)
    ranges = [c for c in _dedupe(parsed.ranges) if c in columns and c not in equality]
    order = [c for c in _dedupe(parsed.order) if c in columns and c not in equality]
    tails: list[list[str]] = []
    if ranges:
        tails.append(ranges[:1])
    if order and order[:1] != ranges[:1]:
        tails.append(order)
    if not tails:
        tails.append([])
    out: list[tuple[str, ...]] = []
    for tail in tails:
        cols = [*equality, *tail]
        while cols and cols[0] in leading:
            cols = cols[1:]  # the existing index already serves that column first
        if cols and tuple(cols) not in out:
            out.append(tuple(cols))
    return out


def _plan_uses(plan: Any, index_name: str) -> bool:
    if isinstance(plan, dict):
        if plan.get("Index Name") == index_name:
            return True
        return any(_plan_uses(child, index_name) for child in plan.get("Plans", ()))
    return False


class _Planner:
    """Costs generic plans on one connection inside the advice transaction."""

    def __init__(self, conn: psycopg.Connection[Any], version_num: int) -> None:
        self.conn = conn
        self.generic_explain = version_num >= 160000

    def plan(self, parsed: _Parsed) -> dict[str, Any]:
        """The generic plan (JSON ``Plan`` node) of one statement."""
        conn = self.conn
        if self.generic_explain:
            query = sql.SQL(GENERIC_EXPLAIN_SQL).format(sql.SQL(parsed.text))
            with conn.transaction():
                row = conn.execute(query, prepare=False).fetchone()
        else:
            name = sql.Identifier(_PREPARED_NAME)
            args = (
                sql.SQL("({})").format(sql.SQL(", ").join([sql.SQL("NULL")] * parsed.params))
                if parsed.params
                else sql.SQL("")
            )
            prepared = False
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL(PREPARE_SQL).format(name, sql.SQL(parsed.text)),
                        prepare=False,
                    )
                    prepared = True
                    row = conn.execute(
                        sql.SQL(EXECUTE_EXPLAIN_SQL).format(name, args), prepare=False
                    ).fetchone()
            finally:
                if prepared:
                    conn.execute(sql.SQL(DEALLOCATE_SQL).format(name), prepare=False)
        assert row is not None
        document = row[0]
        plan: dict[str, Any] = document[0]["Plan"]
        return plan


def _index_name(table: str, columns: Sequence[str]) -> str:
    return "_".join([table, *columns, "idx"])[:63]


# ---------------------------------------------------------------------------------- advise
def _check_hypopg(conn: psycopg.Connection[Any], timeout_ms: int) -> None:
    row = fetch_one(conn, HYPOPG_SQL, _Version, timeout_ms=timeout_ms)
    if row is None:
        raise CollectorUnavailable(
            "index advice needs the hypopg extension in this database", hint=INSTALL_HINT
        )


def advise(
    conn: psycopg.Connection[Any], statements: Sequence[QueryStat], *, settings: Settings
) -> tuple[IndexSuggestion, ...]:
    """Planner-verified index suggestions for ``statements``, best first.

    Raises:
        CollectorUnavailable: hypopg is not installed in this database (``hint`` says how).
    """
    return advise_report(conn, statements, settings=settings).suggestions


def advise_report(
    conn: psycopg.Connection[Any],
    statements: Sequence[QueryStat],
    *,
    settings: Settings,
    timeout_ms: int | None = None,
) -> Advice:
    """Like :func:`advise`, with the rejected statements and candidates and the time taken.

    Runs in one transaction (a savepoint when ``conn`` is already in one) that is rolled back;
    hypothetical indexes are reset before and after. ``settings.advice`` says how much to try;
    ``timeout_ms`` bounds the look for hypopg (default: the collectors' timeout).
    """
    started = time.perf_counter()
    advice = settings.advice
    if timeout_ms is None:
        timeout_ms = settings.monitor.collector_timeout_ms
    _check_hypopg(conn, timeout_ms)
    rejected: list[Rejection] = []
    ranked = sorted(statements, key=lambda s: s.total_exec_time_ms, reverse=True)
    parsed: list[_Parsed] = []
    for stat in ranked[: advice.top_statements]:
        try:
            parsed.append(_parse(stat))
        except _Skip as exc:
            rejected.append(Rejection(stat.queryid, None, None, str(exc)))
    with conn.transaction(force_rollback=True):
        conn.execute(SET_LOCAL_TIMEOUT_SQL, {"timeout": str(max(advice.timeout_ms, 1))})
        conn.execute(GENERIC_PLAN_MODE_SQL)
        conn.execute(HYPO_RESET_SQL)
        try:
            suggestions = _advise_in_transaction(conn, parsed, advice, rejected)
        finally:
            conn.execute(HYPO_RESET_SQL)
    elapsed = (time.perf_counter() - started) * 1000
    return Advice(tuple(suggestions), tuple(rejected), elapsed)


def _fetch_rows(
    conn: psycopg.Connection[Any], query: str, row_type: type[Any], **params: Any
) -> list[Any]:
    with conn.cursor(row_factory=class_row(row_type)) as cur:
        return cur.execute(query, params).fetchall()


def _advise_in_transaction(
    conn: psycopg.Connection[Any],
    parsed: list[_Parsed],
    advice: AdviceSettings,
    rejected: list[Rejection],
) -> list[IndexSuggestion]:
    version = _fetch_rows(conn, SERVER_VERSION_SQL, _ServerVersion)[0].version_num
    planner = _Planner(conn, version)
    relations: dict[tuple[str | None, str], _Relation | None] = {}
    by_table: dict[int, list[_Parsed]] = {}
    rel_by_oid: dict[int, _Relation] = {}
    for item in parsed:
        key = (item.schema, item.table)
        if key not in relations:
            name = sql.Identifier(*[p for p in key if p]).as_string(conn)
            rows = _fetch_rows(conn, RELATION_SQL, _Relation, name=name)
            relations[key] = rows[0] if rows else None
        relation = relations[key]
        if relation is None:
            rejected.append(Rejection(item.stat.queryid, item.table, None, "table not found"))
            continue
        rel_by_oid[relation.oid] = relation
        by_table.setdefault(relation.oid, []).append(item)

    suggestions: list[IndexSuggestion] = []
    for oid, items in by_table.items():
        relation = rel_by_oid[oid]
        columns = {r.column for r in _fetch_rows(conn, COLUMNS_SQL, _Column, oid=oid)}
        leading = {r.column for r in _fetch_rows(conn, LEADING_COLUMNS_SQL, _Column, oid=oid)}
        writes_rows = _fetch_rows(conn, TABLE_WRITES_SQL, _Writes, oid=oid)
        writes = writes_rows[0] if writes_rows else _Writes(0, 0, 0, 0)
        updaters = [p for p in items if p.kind == "update"]
        # Candidate -> statements whose own candidate it extends (compatible leading columns).
        own: dict[int, list[tuple[str, ...]]] = {}
        for i, item in enumerate(items):
            own[i] = _candidates(item, columns, leading)
            if not own[i]:
                rejected.append(
                    Rejection(
                        item.stat.queryid,
                        relation.table,
                        None,
                        "no indexable predicate or order on columns not already leading an index",
                    )
                )
        all_candidates = _dedupe_tuples([c for cands in own.values() for c in cands])
        if not all_candidates:
            continue
        before: dict[int, float] = {}
        for i, item in enumerate(items):
            if not own[i]:
                continue
            try:
                before[i] = float(planner.plan(item)["Total Cost"])
            except psycopg.Error as exc:
                rejected.append(
                    Rejection(
                        item.stat.queryid, relation.table, None, f"cannot plan: {exc}".strip()
                    )
                )
        evaluated: list[tuple[tuple[str, ...], dict[int, StatementGain]]] = []
        for cand in all_candidates:
            served_by = [i for i in before if any(cand[: len(c)] == c for c in own[i])]
            if not served_by:
                continue
            gains = _verify(
                conn, planner, relation, cand, items, served_by, before, advice, rejected
            )
            if gains:
                evaluated.append((cand, gains))
        suggestions.extend(_select(relation, evaluated, items, updaters, writes, advice))
    suggestions.sort(key=lambda s: s.saved_ms - s.write_ms, reverse=True)
    return suggestions


def _dedupe_tuples(items: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    # Longest first: a wider candidate is tried for the statements of its prefixes too.
    return sorted(dict.fromkeys(items), key=len, reverse=True)


def _verify(
    conn: psycopg.Connection[Any],
    planner: _Planner,
    relation: _Relation,
    cand: tuple[str, ...],
    items: list[_Parsed],
    served_by: list[int],
    before: dict[int, float],
    advice: AdviceSettings,
    rejected: list[Rejection],
) -> dict[int, StatementGain]:
    ddl = (
        sql.SQL(HYPO_DDL_SQL)
        .format(
            sql.Identifier(relation.schema, relation.table),
            sql.SQL(", ").join(sql.Identifier(c) for c in cand),
        )
        .as_string(conn)
    )
    hypo = _fetch_rows(conn, HYPO_CREATE_SQL, _Hypo, ddl=ddl)[0]
    gains: dict[int, StatementGain] = {}
    try:
        for i in served_by:
            item = items[i]
            try:
                plan = planner.plan(item)
            except psycopg.Error as exc:
                rejected.append(
                    Rejection(item.stat.queryid, relation.table, cand, f"cannot plan: {exc}")
                )
                continue
            after = float(plan["Total Cost"])
            if not _plan_uses(plan, hypo.name):
                rejected.append(
                    Rejection(
                        item.stat.queryid, relation.table, cand, "the planner does not use it"
                    )
                )
                continue
            cost_before = before[i]
            if not cuts_enough(cost_before, after, advice.min_cost_factor):
                rejected.append(
                    Rejection(
                        item.stat.queryid,
                        relation.table,
                        cand,
                        f"cost {cost_before:.1f} -> {after:.1f} is less than a "
                        f"{advice.min_cost_factor:g}x cut",
                    )
                )
                continue
            stat = item.stat
            cut = 1.0 - after / cost_before
            gains[i] = StatementGain(
                queryid=stat.queryid,
                calls=stat.calls,
                mean_exec_time_ms=stat.mean_exec_time_ms,
                cost_before=cost_before,
                cost_after=after,
                saved_ms=stat.calls * cut * stat.mean_exec_time_ms,
            )
    finally:
        _fetch_rows(conn, HYPO_DROP_SQL, _HypoDropped, oid=hypo.oid)
    return gains


@dataclass(frozen=True)
class _HypoDropped:
    hypopg_drop_index: bool


def _write_cost(
    cand: tuple[str, ...], updaters: list[_Parsed], writes: _Writes, advice: AdviceSettings
) -> tuple[float, str | None]:
    """Extra write time and a note when UPDATE statements of the workload set indexed columns."""
    touching = [u for u in updaters if set(u.updates) & set(cand)]
    hot_share = writes.hot_updates / writes.updates if writes.updates else None
    table_rate = (
        f"the table had {writes.updates} updates ({hot_share:.0%} HOT), "
        f"{writes.inserts} inserts and {writes.deletes} deletes since the statistics reset"
        if hot_share is not None
        else f"the table had {writes.inserts} inserts and {writes.deletes} deletes and no updates"
    )
    if not touching:
        return (
            0.0,
            None
            if not writes.updates
            else f"No workload UPDATE sets {', '.join(cand)}; {table_rate}.",
        )
    calls = sum(u.stat.calls for u in touching)
    write_ms = sum(
        u.stat.calls * u.stat.mean_exec_time_ms * advice.update_overhead for u in touching
    )
    set_cols = sorted({c for u in touching for c in u.updates} & set(cand))
    ids = ", ".join(str(u.stat.queryid) for u in touching)
    note = (
        f"Write cost: UPDATE statements ({ids}; {calls} calls) set {', '.join(set_cols)}, so with "
        f"this index those updates can no longer be HOT and must write every index of the table "
        f"(about {write_ms:.0f} ms more at {advice.update_overhead:.0%} extra per "
        f"update); {table_rate}."
    )
    return write_ms, note


def _select(
    relation: _Relation,
    evaluated: list[tuple[tuple[str, ...], dict[int, StatementGain]]],
    items: list[_Parsed],
    updaters: list[_Parsed],
    writes: _Writes,
    advice: AdviceSettings,
) -> list[IndexSuggestion]:
    """Greedy cover: take the candidate saving most net time, drop the statements it serves."""
    covered: set[int] = set()
    chosen: list[IndexSuggestion] = []
    pool = list(evaluated)
    while pool:
        best: tuple[float, int, int] | None = None
        best_at = -1
        for n, (cand, gains) in enumerate(pool):
            saved = sum(g.saved_ms for i, g in gains.items() if i not in covered)
            if not saved:
                continue
            write_ms, _ = _write_cost(cand, updaters, writes, advice)
            # Ties go to the candidate serving more statements, then to the narrower one.
            score = (saved - write_ms, sum(1 for i in gains if i not in covered), -len(cand))
            if best is None or score > best:
                best, best_at = score, n
        if best is None:
            break
        cand, gains = pool.pop(best_at)
        served = {i: g for i, g in gains.items() if i not in covered}
        write_ms, write_note = _write_cost(cand, updaters, writes, advice)
        saved = sum(g.saved_ms for g in served.values())
        if saved - write_ms <= 0:
            continue
        covered |= set(served)
        chosen.append(
            _suggestion(relation, cand, tuple(served.values()), saved, write_ms, write_note)
        )
    return chosen


def _suggestion(
    relation: _Relation,
    cand: tuple[str, ...],
    gains: tuple[StatementGain, ...],
    saved: float,
    write_ms: float,
    write_note: str | None,
) -> IndexSuggestion:
    name = _index_name(relation.table, cand)
    create = sql.SQL(CREATE_INDEX_SQL).format(
        sql.Identifier(name),
        sql.Identifier(relation.schema, relation.table),
        sql.SQL(", ").join(sql.Identifier(c) for c in cand),
    )
    per_statement = "; ".join(
        f"{g.queryid}: cost {g.cost_before:.0f} -> {g.cost_after:.0f} over {g.calls} calls"
        for g in gains
    )
    reason = (
        f"The planner uses a hypothetical btree on {relation.table} ({', '.join(cand)}) for "
        f"{len(gains)} statement{'s' if len(gains) != 1 else ''} ({per_statement}); "
        f"estimated {saved:.0f} ms of execution time saved"
        + (f", {write_ms:.0f} ms of extra write time" if write_ms else "")
        + "."
        + (f" {write_note}" if write_note else "")
    )
    return IndexSuggestion(
        schema=relation.schema,
        table=relation.table,
        columns=cand,
        using="btree",
        create_sql=create.as_string(None),
        statements=gains,
        saved_ms=saved,
        write_ms=write_ms,
        write_note=write_note,
        reason=reason,
    )
