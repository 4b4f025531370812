"""Safe EXPLAIN: one statement, in a rolled-back read-only transaction, under a timeout.

:func:`explain` parses the text with pglast and accepts exactly one ``SELECT``, ``INSERT``,
``UPDATE``, ``DELETE`` or ``MERGE``. It runs ``EXPLAIN`` inside a transaction that is always
rolled back, with ``statement_timeout`` set and ``transaction_read_only = on`` (a plain
``EXPLAIN`` of a write is allowed in a read-only transaction: it plans, it does not run).
``ANALYZE`` runs the statement, so it is done only when asked and only for a plain ``SELECT``:
no data-modifying CTE, no ``FOR UPDATE``/``SHARE``, no ``SELECT INTO``, and no call of a
volatile function other than a few known to have no side effect. Text with ``$1``
placeholders (pg_stat_statements) gets a generic plan and never ``ANALYZE``.

With ``analyze=True`` the statement runs twice (once for the text plan, once for JSON).

Hostile text is refused with :class:`~dbops.errors.InvalidInput`, never a crash: the text is
capped (``monitor_explain_max_chars``); it is parsed in a thread with a large stack (the parser
recurses once per nesting level: ``1+1+...`` with 25,000 terms overflowed the main thread's
stack and killed the process), the tree is walked without recursion, and the server's own
limits (``stack depth limit exceeded``, SQLSTATE class 54) become the same one-line error.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from pglast import ast, parse_sql
from psycopg import sql

from dbops.config import Settings
from dbops.db import Database
from dbops.errors import InvalidInput

__all__ = ["SAFE_VOLATILE_FUNCTIONS", "ExplainResult", "explain"]

#: Volatile functions ``ANALYZE`` may run: they read clocks or draw random numbers only.
SAFE_VOLATILE_FUNCTIONS = frozenset(
    {"clock_timestamp", "gen_random_uuid", "pg_sleep", "random", "random_normal", "timeofday"}
)

SET_TIMEOUT_SQL = "SELECT set_config('statement_timeout', %(timeout)s, true)"
READ_ONLY_SQL = "SET LOCAL transaction_read_only = on"
GENERIC_PLAN_MODE_SQL = "SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"
VERSION_SQL = "SELECT current_setting('server_version_num')::int"

#: Names among ``names`` with a volatile overload (any schema, or the one given).
VOLATILE_SQL = """
SELECT DISTINCT p.proname
FROM pg_proc AS p
JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE p.proname = ANY(%(names)s)
  AND p.provolatile = 'v'
"""

EXPLAIN_SQL = "EXPLAIN ({}) {}"
PREPARE_SQL = "PREPARE {} AS {}"
EXPLAIN_EXECUTE_SQL = "EXPLAIN ({}) EXECUTE {}{}"
DEALLOCATE_SQL = "DEALLOCATE {}"

_PREPARED_NAME = "dbops_explain_plan"
_EXPLAINABLE = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
_WRITES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)

WRITE_REFUSED = "ANALYZE runs the statement; refused for a statement that writes"


@dataclass(frozen=True)
class ExplainResult:
    """The plan of one statement.

    ``planning_ms`` and ``execution_ms`` are ``None`` without ``ANALYZE``; ``generic`` says the
    text had ``$n`` placeholders and the plan is the generic one.
    """

    text: str
    plan_json: str
    total_cost: float
    planning_ms: float | None
    execution_ms: float | None
    analyzed: bool
    generic: bool


@dataclass(frozen=True)
class _Statement:
    text: str
    node: Any
    params: int


def _walk(node: Any) -> Iterator[Any]:
    """Every AST node under ``node`` (itself included), depth first, without recursion."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, tuple | list):
            stack.extend(reversed(item))
        elif isinstance(item, ast.Node):
            yield item
            names = getattr(type(item), "__slots__", ())
            stack.extend(getattr(item, name, None) for name in reversed(names))


#: Stack of the parsing thread: the parser recurses per nesting level (a 300,000-term sum
#: parses in 256 MiB; the reservation is virtual memory, touched only as deep as needed).
PARSER_STACK_BYTES = 256 * 1024 * 1024
_stack_lock = threading.Lock()


def _parse_deep(query: str) -> list[Any]:
    """``parse_sql(query)`` in a thread with :data:`PARSER_STACK_BYTES` of stack."""
    result: list[Any] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.extend(parse_sql(query))
        except Exception as exc:  # pglast.parser.ParseError, re-raised in the caller
            failure.append(exc)

    with _stack_lock:  # stack_size() is process-wide: set it only for this thread
        previous = threading.stack_size(PARSER_STACK_BYTES)
        try:
            thread = threading.Thread(target=work, name="dbops-explain-parse")
            thread.start()
        finally:
            threading.stack_size(previous)
    thread.join()
    if failure:
        raise failure[0]
    return result


def _parse(query: str, max_chars: int = 100_000) -> _Statement:
    if len(query) > max_chars:
        raise InvalidInput(
            f"the statement has {len(query):,} characters; explain takes at most {max_chars:,} "
            "(DBOPS_MONITOR_EXPLAIN_MAX_CHARS)",
            field="sql",
        )
    try:
        statements = _parse_deep(query)
    except Exception as exc:  # pglast.parser.ParseError
        message = " ".join(str(exc).split())
        raise InvalidInput(f"cannot parse the statement: {message}", field="sql") from exc
    if len(statements) != 1:
        raise InvalidInput(
            f"EXPLAIN takes exactly one statement, got {len(statements)}", field="sql"
        )
    raw = statements[0]
    if not isinstance(raw.stmt, _EXPLAINABLE):
        raise InvalidInput(
            f"only SELECT, INSERT, UPDATE, DELETE or MERGE can be explained, "
            f"not {type(raw.stmt).__name__}",
            field="sql",
        )
    # The statement's own text: no trailing semicolon, nothing after it.
    start = raw.stmt_location or 0
    text = query[start : start + raw.stmt_len] if raw.stmt_len else query[start:]
    params = max(
        (int(n.number or 0) for n in _walk(raw.stmt) if isinstance(n, ast.ParamRef)), default=0
    )
    return _Statement(text.strip(), raw.stmt, params)


def _function_names(node: Any) -> set[str]:
    names: set[str] = set()
    for item in _walk(node):
        if isinstance(item, ast.FuncCall):
            parts = [str(p.sval) for p in item.funcname or () if isinstance(p, ast.String)]
            if parts:
                names.add(parts[-1])
    return names


def _check_analyze(conn: psycopg.Connection[Any], statement: _Statement) -> None:
    """Refuse ``ANALYZE`` for anything but a plain SELECT that calls no unsafe function."""
    node = statement.node
    if not isinstance(node, ast.SelectStmt) or any(isinstance(n, _WRITES) for n in _walk(node)):
        raise InvalidInput(WRITE_REFUSED, field="sql")
    for item in _walk(node):
        if isinstance(item, ast.SelectStmt) and (item.lockingClause or item.intoClause):
            raise InvalidInput(WRITE_REFUSED, field="sql")
    if statement.params:
        raise InvalidInput(
            "ANALYZE runs the statement and needs values for its $n parameters; "
            "refused for parameterized text (a plain EXPLAIN gives the generic plan)",
            field="sql",
        )
    names = sorted(_function_names(node) - SAFE_VOLATILE_FUNCTIONS)
    if names:
        rows = conn.execute(VOLATILE_SQL, {"names": names}).fetchall()
        volatile = sorted(str(row[0]) for row in rows)
        if volatile:
            raise InvalidInput(
                "ANALYZE runs the statement; refused for a call of volatile function(s) "
                f"that may have side effects: {', '.join(volatile)}",
                field="sql",
            )


def _options(*, analyze: bool, generic: bool, json_format: bool) -> sql.Composable:
    parts = []
    if analyze:
        parts += ["ANALYZE", "BUFFERS"]
    if generic:
        parts.append("GENERIC_PLAN")
    parts.append("FORMAT JSON" if json_format else "FORMAT TEXT")
    return sql.SQL(", ").join(sql.SQL(p) for p in parts)


def _run(
    conn: psycopg.Connection[Any], statement: _Statement, *, analyze: bool, json_format: bool
) -> list[tuple[Any, ...]]:
    """Rows of one EXPLAIN of ``statement`` (a generic plan when it has parameters)."""
    body = sql.SQL(statement.text)  # one statement, checked by pglast; never bound values
    if not statement.params:
        options = _options(analyze=analyze, generic=False, json_format=json_format)
        query = sql.SQL(EXPLAIN_SQL).format(options, body)
        return conn.execute(query, prepare=False).fetchall()
    version = conn.execute(VERSION_SQL).fetchone()
    if version is not None and int(version[0]) >= 160000:
        options = _options(analyze=False, generic=True, json_format=json_format)
        query = sql.SQL(EXPLAIN_SQL).format(options, body)
        return conn.execute(query, prepare=False).fetchall()
    # PostgreSQL 15 and older: a prepared statement, forced to its generic plan, with NULLs.
    name = sql.Identifier(_PREPARED_NAME)
    args = sql.SQL("({})").format(sql.SQL(", ").join([sql.SQL("NULL")] * statement.params))
    options = _options(analyze=False, generic=False, json_format=json_format)
    prepared = False
    try:
        with conn.transaction():
            conn.execute(GENERIC_PLAN_MODE_SQL)
            conn.execute(sql.SQL(PREPARE_SQL).format(name, body), prepare=False)
            prepared = True
            return conn.execute(
                sql.SQL(EXPLAIN_EXECUTE_SQL).format(options, name, args), prepare=False
            ).fetchall()
    finally:
        if prepared:  # PREPARE outlives a rollback: never leave it on a pooled connection
            conn.execute(sql.SQL(DEALLOCATE_SQL).format(name), prepare=False)


def _unplannable(sqlstate: str | None) -> bool:
    """An error in the text itself, not in the server or the role.

    Normalized texts from pg_stat_statements often cannot be planned as they are: a typed
    literal became a parameter (``interval $2``: 42601), a parameter's type cannot be
    inferred (42P18), the table is in another search path (42P01); ``NULL`` arguments of the
    generic plan fail a data check (class 22); program limits (class 54: stack depth). A
    missing privilege (42501) stays what it is.
    """
    state = sqlstate or ""
    return state[:2] in {"22", "54"} or (state.startswith("42") and state != "42501")


def explain(
    db: Database,
    sql_text: str,
    *,
    settings: Settings,
    analyze: bool = False,
    timeout_ms: int | None = None,
) -> ExplainResult:
    """The plan of one statement, run in a transaction that is always rolled back.

    Args:
        db: the database to plan on.
        sql_text: exactly one SELECT, INSERT, UPDATE, DELETE or MERGE; ``$n`` placeholders
            (as in pg_stat_statements) give a generic plan.
        settings: ``monitor_collector_timeout_ms`` is the default timeout.
        analyze: run the statement (``EXPLAIN ANALYZE``): a plain SELECT only.
        timeout_ms: ``statement_timeout`` of each EXPLAIN (default from ``settings``).

    Returns:
        The plan as text and as JSON, its total cost, and with ``analyze`` the times.

    Raises:
        InvalidInput: not exactly one explainable statement, or ``analyze`` asked for a
            statement that writes, locks rows, has parameters or calls a volatile function.
        OperationTimeout: the EXPLAIN took longer than the timeout.
    """
    statement = _parse(sql_text, settings.monitor.explain_max_chars)
    if analyze and not isinstance(statement.node, ast.SelectStmt):
        raise InvalidInput(WRITE_REFUSED, field="sql")
    timeout = timeout_ms if timeout_ms is not None else settings.monitor.collector_timeout_ms
    with db.connection() as conn, conn.transaction(force_rollback=True):
        conn.execute(SET_TIMEOUT_SQL, {"timeout": str(max(int(timeout), 1))})
        conn.execute(READ_ONLY_SQL)
        if analyze:
            _check_analyze(conn, statement)
        try:
            text_rows = _run(conn, statement, analyze=analyze, json_format=False)
            json_rows = _run(conn, statement, analyze=analyze, json_format=True)
        except psycopg.Error as exc:
            if not _unplannable(exc.sqlstate):
                raise
            raise InvalidInput(
                f"the server cannot plan this statement: {exc.diag.message_primary}", field="sql"
            ) from None
    document = json_rows[0][0]
    if isinstance(document, str):
        document = json.loads(document)
    top: dict[str, Any] = document[0]
    planning = top.get("Planning Time")
    execution = top.get("Execution Time")
    return ExplainResult(
        text="\n".join(str(row[0]) for row in text_rows),
        plan_json=json.dumps(document, indent=2),
        total_cost=float(top["Plan"]["Total Cost"]),
        planning_ms=float(planning) if analyze and planning is not None else None,
        execution_ms=float(execution) if analyze and execution is not None else None,
        analyzed=analyze,
        generic=statement.params > 0,
    )
