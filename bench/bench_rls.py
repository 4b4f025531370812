"""What row-level security costs the service hot reads (migration 0008), in one run.

    uv run python -m bench.bench_rls [--users 100000 --teams 20000] [--quick]

Starts a throwaway durable embedded cluster under /var/tmp (destroyed at the end; with
DATABASE_URL set, that database instead, as a superuser: its dbops roles get new random
passwords and its seeded rows are replaced) and sets it up as ``tests/fixtures/db.py`` does:
dbops' roles as the superuser (``setup_roles``), the migrations as ``dbops_owner``,
``grant_privileges``; seeds with ``dbops.ops.seed.seed`` and
tops memberships up to ~3 per user (``bench.bench_services.prepare``'s data set). Then times
each hot read on five sides, alternating them in rounds:

(a) ``raw``: the statement the service sends for this user actor (its visibility rule folded
    in, same parameters, same answer) on a raw autocommit psycopg connection as the superuser
    (``prepare=True``, tuple rows; RLS does not apply to a superuser): the baseline;
(b) ``rls, same actor``: the public service method on ``open_database()`` as ``dbops_app``,
    with one user actor on every call (the pooled connection carries it: no extra statement);
(c) ``rls, actor changes``: as (b), but the actor's context alternates every call, so each
    read first sends one ``set_config`` statement (one more round trip);
(d) ``superuser, same actor``: the service of (b) on a Database opened as the superuser (RLS
    bypassed, actor carried): (b) / (d) is the policies' own cost;
(e) ``rls, actor changes, 2 connections``: (c)'s alternation on a pool of two connections:
    actor affinity (``dbops.db.engine.ActorPool``) gives each actor the one that carries it.

It also runs ``EXPLAIN (ANALYZE, BUFFERS)`` of every hot statement as ``dbops_app`` with the
user actor set (and as the superuser, to compare the scans), prints a markdown report and
writes it to the "Row-level security" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

from bench._harness import Latency, databases, machine, markdown_table, measure_pair
from bench._harness import replace_section as write_section
from bench.bench_services import MEMBERSHIPS_PER_USER, SERVER_VERSION, Dataset
from bench.bench_services import prepare as seed_dataset
from dbops.config import Settings, to_libpq_url
from dbops.db import Database, open_database
from dbops.db.engine import ActorContext, send_actor
from dbops.db.roles import SYSTEM_ROLE
from dbops.ops.migrate import upgrade
from dbops.ops.roles import ROLE_NAMES, RoleName, grant_privileges, setup_roles
from dbops.services import Actor, MembershipService, TeamService, UserService
from dbops.services.statements import (
    SELECT_OWN_AND_ROLE_SQL,
    SELECT_ROLE_SQL,
    SELECT_TEAMS_OF_USER_SQL,
    SELECT_USER_BY_EMAIL_SQL,
)
from dbops.services.teams import (
    ORDER_TEAMS_SQL,
    SEARCH_TEAMS_SQL,
    SELECT_MEMBER_TEAM_BY_SLUG_SQL,
    SELECT_TEAMS_SQL,
    WHERE_LIVE,
    WHERE_MEMBER,
    WHERE_SETTINGS_CONTAIN,
)
from dbops.services.users import SELECT_VISIBLE_USER_BY_EMAIL_SQL

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
SECTION = "Row-level security"
RATIO_TARGET = 1.5
SUPERUSER = "superuser, same actor"
AFFINITY = "rls, actor changes, 2 connections"
#: First page of ``TeamService.list_teams`` (its default limit, plus the look-ahead row).
PAGE = 50

#: The list read as the service builds it for a user actor (first page, its live teams).
LIST_MEMBER_TEAMS_SQL = (
    SELECT_TEAMS_SQL.format(where=sql.SQL(" AND ").join([WHERE_MEMBER, WHERE_LIVE]))
    + ORDER_TEAMS_SQL
)
#: The list read with a settings filter (``@>``, GIN index ix_teams_settings): EXPLAIN only.
LIST_TEAMS_SETTINGS_SQL = (
    SELECT_TEAMS_SQL.format(where=sql.SQL(" AND ").join([WHERE_LIVE, WHERE_SETTINGS_CONTAIN]))
    + ORDER_TEAMS_SQL
)

#: Users with at least 3 live teams, all of them at most ``max_size`` members, or one of them
#: the team ``big`` (the actors are drawn at random, seeded, among them).
CANDIDATE_ACTORS = """
WITH sizes AS (SELECT team_id, count(*) AS n FROM team_members GROUP BY team_id)
SELECT m.user_id
FROM team_members AS m
JOIN teams AS t ON t.id = m.team_id AND t.deleted_at IS NULL
JOIN users AS u ON u.id = m.user_id AND u.deleted_at IS NULL
JOIN sizes AS s ON s.team_id = m.team_id
GROUP BY m.user_id
HAVING count(*) >= 3
   AND CASE WHEN %(big)s::uuid IS NULL THEN max(s.n) <= %(max_size)s
            ELSE bool_or(m.team_id = %(big)s) END
ORDER BY m.user_id
"""
#: The largest live team, topped up to ``n`` members with users not in it (random, seeded by
#: ``setseed``): a company-wide team, normal in a team product.
BIGGEST_TEAM = """
SELECT m.team_id FROM team_members AS m JOIN teams AS t ON t.id = m.team_id
WHERE t.deleted_at IS NULL GROUP BY m.team_id ORDER BY count(*) DESC, m.team_id LIMIT 1
"""
TOP_UP_TEAM = """
INSERT INTO team_members (team_id, user_id, role)
SELECT %(team)s, u.id, 'MEMBER'
FROM users AS u
WHERE u.deleted_at IS NULL
  AND NOT EXISTS (SELECT 1 FROM team_members AS m WHERE m.team_id = %(team)s AND m.user_id = u.id)
ORDER BY random()
LIMIT greatest(0, %(n)s - (SELECT count(*) FROM team_members WHERE team_id = %(team)s))
"""
#: Small teams: at most this many members, for the actor "in small teams".
SMALL_TEAM = 50
#: What the actor may see: their live teams, and their live teammates (themselves included).
ACTOR_TEAMS = """
SELECT t.id, t.slug, t.name
FROM team_members AS m JOIN teams AS t ON t.id = m.team_id AND t.deleted_at IS NULL
WHERE m.user_id = %(user_id)s
ORDER BY t.id
"""
ACTOR_TEAMMATES = """
SELECT DISTINCT other.team_id, u.id, lower(u.email) AS email
FROM team_members AS mine
JOIN teams AS t ON t.id = mine.team_id AND t.deleted_at IS NULL
JOIN team_members AS other ON other.team_id = mine.team_id
JOIN users AS u ON u.id = other.user_id AND u.deleted_at IS NULL
WHERE mine.user_id = %(user_id)s
ORDER BY 1, 2
"""
CURRENT_ROLE_SQL = """
SELECT current_user::text, (SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user)
"""
#: Members per live team: median, 99th percentile and largest.
TEAM_SIZES = """
SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY n),
       percentile_disc(0.99) WITHIN GROUP (ORDER BY n),
       max(n)
FROM (SELECT count(*) AS n FROM team_members AS m
      JOIN teams AS t ON t.id = m.team_id AND t.deleted_at IS NULL
      GROUP BY m.team_id) AS s
"""
#: Members of each of the actor's live teams.
ACTOR_TEAM_SIZES = """
SELECT count(*) AS n
FROM team_members AS mine
JOIN teams AS t ON t.id = mine.team_id AND t.deleted_at IS NULL
JOIN team_members AS other ON other.team_id = mine.team_id
WHERE mine.user_id = %(user_id)s
GROUP BY mine.team_id
ORDER BY n
"""
#: A plan's scan nodes, e.g. "Index Scan using uq_users_email_live on users".
SCAN_NODE = re.compile(
    r"((?:Parallel )?(?:Seq Scan|Index Scan|Index Only Scan|Bitmap Index Scan|Bitmap Heap Scan)"
    r"(?: Backward)?(?: using \S+)? on \S+(?: \S+)?)"
)
EXECUTION_TIME = re.compile(r"Execution Time: ([\d.]+) ms")


# ------------------------------------------------------------------------------- set up
def setup_cluster(url: str, settings: Settings) -> dict[RoleName, str]:
    """Roles as the superuser, migrations as the owner, grants: URL per role.

    The passwords are random, carried in the role URLs (for a DATABASE_URL server that asks
    for them) and never printed; the embedded cluster's unix socket does not ask for them.
    """
    passwords: dict[RoleName, str] = {role: secrets.token_urlsafe(18) for role in ROLE_NAMES}
    urls = {
        role: make_url(url)
        .set(username=name, password=passwords[role])
        .render_as_string(hide_password=False)
        for role, name in ROLE_NAMES.items()
    }
    with open_database(settings, url) as admin:
        setup_roles(admin, passwords)
        upgrade(urls["owner"], settings, "head")
        with admin.connection() as conn:
            grant_privileges(conn)
    return urls


@dataclass(frozen=True)
class Inputs:
    """The user actor of (b)/(c)/(d) and inputs every side can find (the actor sees them)."""

    user_id: uuid.UUID
    emails: list[str]
    slugs: list[str]
    pairs: list[tuple[uuid.UUID, uuid.UUID]]
    teams: int
    teammates: int
    team_sizes: list[int]
    all_team_sizes: tuple[int, int, int]


def make_big_team(data: Dataset, size: int, seed_value: int) -> uuid.UUID:
    """The largest live team, topped up to ``size`` members; then ``VACUUM (ANALYZE)``."""
    with psycopg.connect(to_libpq_url(data.url), autocommit=True) as conn:
        row = conn.execute(BIGGEST_TEAM).fetchone()
        assert row is not None
        team: uuid.UUID = row[0]
        conn.execute("SELECT setseed(%s)", (((seed_value % 1000) / 1000.0),))
        conn.execute(TOP_UP_TEAM, {"team": team, "n": size})
        conn.execute("VACUUM (ANALYZE) team_members")
    return team


def pick_inputs(data: Dataset, seed_value: int, big: uuid.UUID | None) -> Inputs:
    """A random user with ≥ 3 live teams, one of them ``big`` (else all small); the e-mails,
    slugs and memberships they can see."""
    with psycopg.connect(to_libpq_url(data.url), autocommit=True) as conn:
        candidates = [
            r[0] for r in conn.execute(CANDIDATE_ACTORS, {"max_size": SMALL_TEAM, "big": big})
        ]
        if not candidates:
            raise SystemExit("no user with 3 live teams of that shape: seed more users")
        user_id = random.Random(seed_value).choice(candidates)
        teams = conn.execute(ACTOR_TEAMS, {"user_id": user_id}).fetchall()
        mates = conn.execute(ACTOR_TEAMMATES, {"user_id": user_id}).fetchall()
        sizes = [int(r[0]) for r in conn.execute(ACTOR_TEAM_SIZES, {"user_id": user_id})]
        spread = conn.execute(TEAM_SIZES).fetchone()
    assert spread is not None
    emails = sorted({email for _, _, email in mates})
    return Inputs(
        user_id=user_id,
        emails=emails,
        slugs=[slug for _, slug, _ in teams],
        pairs=[(team, user) for team, user, _ in mates],
        teams=len(teams),
        teammates=len({user for _, user, _ in mates}),
        team_sizes=sizes,
        all_team_sizes=(int(spread[0]), int(spread[1]), int(spread[2])),
    )


# ------------------------------------------------------------------------------ operations
@dataclass(frozen=True)
class Op:
    """One hot read: its inputs, the statement and params of its raw side, and the sides."""

    name: str
    inputs: Sequence[Any]
    sides: dict[str, Callable[[Any], object]]
    statement: str | sql.Composed
    params: Callable[[Any], dict[str, Any]]


@dataclass
class ServiceSet:
    users: UserService
    teams: TeamService
    members: MembershipService

    @classmethod
    def on(cls, db: Database) -> ServiceSet:
        """Services without cache (every call reads the database)."""
        return cls(UserService(db), TeamService(db), MembershipService(db))


def _raw(conn: psycopg.Connection[Any], statement: str | sql.Composed, many: bool) -> Callable:
    def call(params: dict[str, Any]) -> object:
        cur = conn.execute(statement, params, prepare=True)
        return cur.fetchall() if many else cur.fetchone()

    return call


def operations(
    inputs: Inputs,
    raw: psycopg.Connection[Any],
    app: ServiceSet,
    app_changing: ServiceSet,
    superuser: ServiceSet,
    app_two: ServiceSet,
) -> list[Op]:
    """The five hot reads with their five sides; (c) and (e) alternate two actor contexts.

    (c)'s two actors are the same user with a different ``name`` (``Actor(kind="user",
    user_id=..., name="a"|"b")``): the context differs, so the pooled connection never carries
    the one a call needs and every call sends ``set_config`` first, while the policies, rows
    and plans are exactly those of (b). (e) alternates them the same way on a pool of two
    connections: actor affinity (``dbops.db.engine.ActorPool``) hands each the one that
    carries it.
    """
    actor = Actor.user(inputs.user_id)
    flip = [Actor("user", inputs.user_id, "a"), Actor("user", inputs.user_id, "b")]
    turn = [0]

    def changing() -> Actor:
        turn[0] ^= 1
        return flip[turn[0]]

    def sides(
        raw_call: Callable[[Any], object], service: Callable[[ServiceSet, Actor, Any], object]
    ) -> dict[str, Callable[[Any], object]]:
        return {
            "raw (superuser)": raw_call,
            "rls, same actor": lambda x: service(app, actor, x),
            "rls, actor changes": lambda x: service(app_changing, changing(), x),
            "superuser, same actor": lambda x: service(superuser, actor, x),
            AFFINITY: lambda x: service(app_two, changing(), x),
        }

    def email_params(e: str) -> dict[str, Any]:
        return {"email": e, "actor_id": inputs.user_id}

    def slug_params(s: str) -> dict[str, Any]:
        return {"slug": s, "actor_id": inputs.user_id}

    def pair_params(p: tuple[uuid.UUID, uuid.UUID]) -> dict[str, Any]:
        return {"team_id": p[0], "user_id": p[1], "actor_id": inputs.user_id}

    def user_params(u: uuid.UUID) -> dict[str, Any]:
        return {"user_id": u}

    def page_params(_: object) -> dict[str, Any]:
        return {"limit": PAGE + 1, "actor_id": inputs.user_id}

    raw_email = _raw(raw, SELECT_VISIBLE_USER_BY_EMAIL_SQL, False)
    raw_slug = _raw(raw, SELECT_MEMBER_TEAM_BY_SLUG_SQL, False)
    raw_own_role = _raw(raw, SELECT_ROLE_SQL, False)
    raw_other_role = _raw(raw, SELECT_OWN_AND_ROLE_SQL, False)

    def raw_role(params: dict[str, Any]) -> object:
        """The statement the service sends: its own role alone, or its own and the other's."""
        same = params["user_id"] == params["actor_id"]
        return (raw_own_role if same else raw_other_role)(params)

    raw_teams = _raw(raw, SELECT_TEAMS_OF_USER_SQL, True)
    raw_list = _raw(raw, LIST_MEMBER_TEAMS_SQL, True)
    return [
        Op(
            "users.get_by_email",
            inputs.emails,
            sides(
                lambda e: raw_email(email_params(e)),
                lambda s, a, e: s.users.get_by_email(a, e),
            ),
            SELECT_VISIBLE_USER_BY_EMAIL_SQL,
            email_params,
        ),
        Op(
            "teams.get_by_slug",
            inputs.slugs,
            sides(
                lambda x: raw_slug(slug_params(x)),
                lambda s, a, x: s.teams.get_by_slug(a, x),
            ),
            SELECT_MEMBER_TEAM_BY_SLUG_SQL,
            slug_params,
        ),
        Op(
            "memberships.role_of",
            inputs.pairs,
            sides(
                lambda p: raw_role(pair_params(p)),
                lambda s, a, p: s.members.role_of(a, p[0], p[1]),
            ),
            SELECT_OWN_AND_ROLE_SQL,
            pair_params,
        ),
        Op(
            "teams.teams_of_user",
            [inputs.user_id],
            sides(
                lambda u: raw_teams(user_params(u)),
                lambda s, a, u: s.teams.teams_of_user(a, u),
            ),
            SELECT_TEAMS_OF_USER_SQL,
            user_params,
        ),
        Op(
            "teams.list_teams (page 1)",
            [None],
            sides(
                lambda x: raw_list(page_params(x)),
                lambda s, a, _: list(s.teams.list_teams(a, limit=PAGE).items),
            ),
            LIST_MEMBER_TEAMS_SQL,
            page_params,
        ),
    ]


def _size(result: object) -> int:
    if result is None:
        return 0
    if isinstance(result, list):
        return len(result)
    return 1


def check_answers(ops: list[Op]) -> dict[str, dict[str, int]]:
    """Every side finds rows for the first inputs; rows returned per side on the first input."""
    sizes: dict[str, dict[str, int]] = {}
    for op in ops:
        for arg in op.inputs[:10]:
            for name, call in op.sides.items():
                if _size(call(arg)) == 0:
                    raise SystemExit(f"{op.name}/{name}: no row for input {arg!r}")
        sizes[op.name] = {name: _size(call(op.inputs[0])) for name, call in op.sides.items()}
    return sizes


def calls_for(op: Op, wanted: int, side_seconds: float) -> int:
    """``wanted``, or fewer when the slowest side would take more than ``side_seconds``.

    A 10-call pilot of every side; at least 200 calls (10 per round) stay.
    """
    slowest = 0.0
    for call in op.sides.values():
        started = time.perf_counter()
        for i in range(10):
            call(op.inputs[i % len(op.inputs)])
        slowest = max(slowest, (time.perf_counter() - started) / 10)
    if slowest * wanted <= side_seconds:
        return wanted
    return max(200, min(wanted, int(side_seconds / slowest) // 20 * 20))


# ------------------------------------------------------------------------------- EXPLAIN
@dataclass(frozen=True)
class Plan:
    """One statement's EXPLAIN (ANALYZE, BUFFERS) as one role: its scans and time."""

    text: str
    scans: list[str]
    ms: float


def explain(
    conn: psycopg.Connection[Any], statement: str | sql.Composed, params: dict[str, Any]
) -> Plan:
    query = sql.SQL("EXPLAIN (ANALYZE, BUFFERS) ") + (
        statement if isinstance(statement, sql.Composed) else sql.SQL(statement)
    )
    lines = [r[0] for r in conn.execute(query, params)]
    text = "\n".join(lines)
    scans = [m.group(1) for line in lines for m in [SCAN_NODE.search(line)] if m]
    found = EXECUTION_TIME.search(text)
    return Plan(text, scans, float(found.group(1)) if found else 0.0)


def explain_all(
    urls: dict[RoleName, str], data: Dataset, inputs: Inputs, ops: list[Op]
) -> dict[str, tuple[Plan, Plan]]:
    """Each hot statement (and the settings filter and search of teams) as app and superuser."""
    user: ActorContext = ("user", str(inputs.user_id), "", "none")
    # What the services send for a system actor: the switch to the BYPASSRLS system role.
    system: ActorContext = ("system", "", "bench", SYSTEM_ROLE)
    statements: list[tuple[str, str | sql.Composed, dict[str, Any], ActorContext]] = [
        (op.name, op.statement, op.params(op.inputs[0]), user) for op in ops
    ]
    statements += [
        (
            "users.get_by_email (system actor)",
            SELECT_USER_BY_EMAIL_SQL,
            {"email": inputs.emails[0]},
            system,
        ),
        (
            "teams.list_teams(settings_contains=...)",
            LIST_TEAMS_SETTINGS_SQL,
            {"limit": PAGE + 1, "settings_contains": Jsonb({"plan": "pro"})},
            user,
        ),
        (
            "teams.search_teams",
            SEARCH_TEAMS_SQL,
            {"q": inputs.slugs[0].split("-")[0], "limit": 21},
            user,
        ),
    ]
    plans: dict[str, tuple[Plan, Plan]] = {}
    with (
        psycopg.connect(to_libpq_url(urls["app"]), autocommit=True) as app,
        psycopg.connect(to_libpq_url(data.url), autocommit=True) as su,
    ):
        for name, statement, params, actor in statements:
            send_actor(app, actor, local=False)
            # The second plan of each: the first call of a policy function in a session also
            # compiles it and reads the catalog (hundreds of buffers, milliseconds).
            explain(app, statement, params)
            explain(su, statement, params)
            plans[name] = (explain(app, statement, params), explain(su, statement, params))
    return plans


# ------------------------------------------------------------------------------ reporting
def _us(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:,.2f} ms"
    return f"{value:,.1f} µs" if value < 100 else f"{value:,.0f} µs"


def _ratio(value: float) -> str:
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.3f}x"


def _index_note(plan: Plan) -> str:
    if not plan.scans:
        return "(no scan node)"
    return "; ".join(dict.fromkeys(plan.scans))


def render_header(
    data: Dataset, args: argparse.Namespace, server: str, command: str, big_size: int
) -> str:
    """Machine, data and the sides: what both actors' tables share."""
    out: list[str] = []
    out.append(
        f"Machine: {machine()}; shared with other jobs during the run (2 cores: medians move "
        f"by up to ±30% between runs, read a ratio near a target as a tie). PostgreSQL {server} "
        f"(embedded, durable, unix socket). Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC."
        f"  \nCommand: `{command}`"
    )
    out.append(
        f"Data: {data.users:,} users, {data.teams:,} teams, {data.memberships:,} memberships "
        f"(seeded by `dbops.ops.seed`, topped up to ~{MEMBERSHIPS_PER_USER} per user as in the "
        f"service bench), then the largest team topped up to {big_size:,} members (a "
        "company-wide team), `VACUUM (ANALYZE)`. Cluster set up as the tests do: `setup_roles` "
        "as the superuser, migrations as `dbops_owner`, `grant_privileges`. Two actors, each "
        f"drawn at random (seed {args.seed}) among users with ≥ 3 live teams: one whose teams "
        f"all have at most {SMALL_TEAM} members, one who is a member of the big team. Inputs "
        "per actor, the same for every side: the e-mails of their teammates, the slugs of "
        "their teams, the (team, member) pairs of their teams, the actor for "
        "`teams_of_user`, the first page (50) for `list_teams`."
    )
    out.append(
        "Sides: **(a) raw** = the very statement the service sends for a user actor, its "
        "visibility rule folded in (`SELECT_VISIBLE_USER_BY_EMAIL_SQL`, "
        "`SELECT_MEMBER_TEAM_BY_SLUG_SQL`, the role statements, `SELECT_TEAMS_OF_USER_SQL`, "
        "the `list_teams` text with `WHERE_MEMBER`), with the same parameters, on one raw "
        "autocommit psycopg connection as the superuser, `prepare=True`, tuple rows: RLS does "
        "not apply, the answer is the service's. **(b) rls, same actor** = the public "
        "service method (no cache) on "
        "`open_database()` as `dbops_app`, the same user actor on every call, so the pooled "
        "connection carries it and no `set_config` is sent. **(c) rls, actor changes** = as "
        "(b) on its own Database, but the actor context alternates every call between two "
        "contexts of the same user (`name` 'a'/'b'), so each call first sends the session "
        "`set_config` (one round trip more) while rows and plans stay those of (b). "
        "**(d) superuser, same actor** = the service of (b) on a Database opened as the "
        "superuser: RLS bypassed, no actor round trip. **(e) rls, actor changes, 2 "
        "connections** = (c)'s alternation on a Database whose pool holds two connections: "
        "actor affinity (`ActorPool`) gives each context the idle connection that carries it, "
        "so no `set_config` is sent (the common case of a few active users per worker; more "
        "active actors than idle connections pay (c)'s round trip). "
        f"Up to {args.calls:,} timed calls per side (fewer when the slowest side of an "
        f"operation would run longer than {args.side_seconds:g} s: column `calls`) after "
        "min(300, calls / 10) warm-up calls, in 20 rounds whose side order rotates."
    )
    return "\n\n".join(out)


def render_actor(
    label: str,
    inputs: Inputs,
    latency: dict[str, dict[str, Latency]],
    sizes: dict[str, dict[str, int]],
    plans: dict[str, tuple[Plan, Plan]],
) -> str:
    """One actor's latency table, target check, plans and reading."""
    out: list[str] = [f"### Actor {label}"]
    out.append(
        f"{inputs.teams} live teams of {', '.join(f'{n:,}' for n in inputs.team_sizes)} "
        f"members, {inputs.teammates:,} distinct teammates (themselves included); team sizes "
        f"over all live teams: median {inputs.all_team_sizes[0]}, p99 "
        f"{inputs.all_team_sizes[1]}, max {inputs.all_team_sizes[2]:,}. Inputs: "
        f"{len(inputs.emails):,} e-mails, {len(inputs.slugs)} slugs, {len(inputs.pairs):,} "
        "(team, member) pairs."
    )
    rows: list[list[object]] = []
    checks: list[list[object]] = []
    for name, sides in latency.items():
        base = sides["raw (superuser)"].median_us
        same = sides["rls, same actor"].median_us
        for side, value in sides.items():
            vs_b = "" if side.startswith(("raw", "rls, same")) else _ratio(value.median_us / same)
            rows.append(
                [
                    f"{name}: {side}",
                    _us(value.median_us),
                    _us(value.p99_us),
                    _ratio(value.median_us / base),
                    vs_b,
                    sizes[name][side],
                    value.n,
                ]
            )
        ratio = same / base
        changing = sides["rls, actor changes"].median_us / base
        checks.append(
            [
                name,
                f"{ratio:.2f}x",
                f"{changing:.2f}x",
                f"{sides['superuser, same actor'].median_us / base:.2f}x",
                f"{sides[AFFINITY].median_us / base:.2f}x",
                "met" if ratio <= RATIO_TARGET else "**MISSED**",
            ]
        )
    out.append("#### Latency (single thread)")
    out.append(
        markdown_table(
            ["operation: side", "median", "p99", "vs (a) raw", "vs (b)", "rows", "calls"],
            rows,
        )
    )
    out.append(f"#### Target: service vs raw ≤ {RATIO_TARGET}x with RLS on")
    out.append(
        markdown_table(
            ["operation", "(b)/(a)", "(c)/(a)", "(d)/(a)", "(e)/(a)", f"(b) ≤ {RATIO_TARGET}x"],
            checks,
        )
    )
    out.append("#### Plans as `dbops_app` with this actor (EXPLAIN ANALYZE, BUFFERS)")
    prow = []
    for name, (app, su) in plans.items():
        prow.append(
            [name, _index_note(su), f"{su.ms:.3f} ms", _index_note(app), f"{app.ms:.3f} ms"]
        )
    out.append(
        markdown_table(
            ["statement", "scans as superuser", "time", "scans as dbops_app (RLS)", "time"], prow
        )
    )
    out.append("#### Reading")
    out.append(reading(latency, plans))
    out.append(f"<details><summary>Full plans as dbops_app, actor {label}</summary>\n")
    for name, (app, _) in plans.items():
        out.append(f"{name}:\n\n```\n{app.text}\n```\n")
    out.append("</details>")
    return "\n\n".join(out)


def reading(latency: dict[str, dict[str, Latency]], plans: dict[str, tuple[Plan, Plan]]) -> str:
    """The numbers of this run in words: where the target holds, policy and round-trip costs."""
    parts: list[str] = []
    missed = [
        name
        for name, sides in latency.items()
        if sides["rls, same actor"].median_us / sides["raw (superuser)"].median_us > RATIO_TARGET
    ]
    held = [name for name in latency if name not in missed]
    parts.append(
        f"The service/raw ≤ {RATIO_TARGET}x target with RLS on (side b): "
        + (f"missed by {', '.join(missed)}" if missed else "held by every hot read")
        + (f"; held by {', '.join(held)}" if held and missed else "")
        + ". Without the policies (side d, same service, superuser) the ratios are "
        + ", ".join(
            f"{sides['superuser, same actor'].median_us / sides['raw (superuser)'].median_us:.2f}x"
            for sides in latency.values()
        )
        + " (the service's own fixed cost over a fast raw read; ±30% noise), so what RLS "
        "adds is in the statement and the actor round trip."
    )
    policy = ", ".join(
        f"{name} {_us(sides['rls, same actor'].median_us - sides[SUPERUSER].median_us)}"
        for name, sides in latency.items()
    )
    trip = ", ".join(
        f"{name} {_us(sides['rls, actor changes'].median_us - sides['rls, same actor'].median_us)}"
        for name, sides in latency.items()
    )
    affinity = ", ".join(
        f"{name} {_us(sides[AFFINITY].median_us - sides['rls, same actor'].median_us)}"
        for name, sides in latency.items()
    )
    parts.append(
        f"Policy cost per call, (b) - (d): {policy}. Actor round trip, (c) - (b): {trip}; "
        f"with actor affinity, (e) - (b): {affinity} "
        "(the machine was loaded: differences under ~50 µs, or negative, are noise)."
    )
    index_lost = [
        name
        for name, (app, su) in plans.items()
        if any("Seq Scan" in scan for scan in app.scans)
        and not any("Seq Scan" in scan for scan in su.scans)
    ]
    if index_lost:
        parts.append(
            "Index lost under RLS (Seq Scan as dbops_app, an index as the superuser): "
            + ", ".join(index_lost)
            + "."
        )
    return " ".join(parts)


#: Why, from the plans (structural: holds for any data size; the numbers above scale with it).
CAUSES = """\
### Causes

From the plans above (reproduce: `uv run python -m bench.bench_rls`, or `--quick` for 20,000
users and 1,000 calls; `--big-team N` sets the company-wide team's size):

1. **Nothing grows with the actor's teams any more** (migration 0012). The `users` read
   policy used to compare each row with all the actor's teammates, an array built for every
   statement that touched `users`: 2-9 ms per statement for a member of a 3,712-member team
   (98x raw for `get_by_email`, 34x for `get_by_slug`, 50x for `role_of` on 2026-12-06,
   before 0012). It now checks the row by its own key (the actor, or `EXISTS` a membership of
   that user in one of the actor's teams: one `ix_team_members_user_id` probe a row), so the
   two actors' ratios above are the same within noise.
2. **The e-mail lookup keeps its index under RLS**: `email = $1` on the lowercase column is
   LEAKPROOF, so `uq_users_email_live` drives the scan and the policy checks the one row
   found. (`lower(email) = $1`, before 0012, could only filter rows after the policy.) The
   team policies compare `team_id`/`id` with the actor's few teams, an InitPlan array, so
   `list_teams` and `search_teams` read only the actor's teams through `pk_teams`.
3. **System actors switch to the BYPASSRLS role `dbops_system`**, so their statements plan
   as without RLS (`users.get_by_email (system actor)` uses `uq_users_email_live`).
4. **No function call in any read policy** (migration 0013). The policies used to ask a
   `SECURITY DEFINER` plpgsql function for the actor's teams once per RLS table in the
   statement: opaque to the planner, its query ran through SPI with its own executor start,
   locks and plan check, 60-130 µs per statement here. They now read two `security_barrier`
   views owned by `dbops_policy` (`rls_actor_teams`, `rls_actor_team_memberships`) that the
   planner inlines: the actor's teams are an index-only probe of `ix_team_members_user_id`
   (now `(user_id, team_id)`) in the statement's own plan (the `Index Only Scan ... m_1`
   lines above). `role_of` about someone else reads both memberships in one scan
   (`SELECT_OWN_AND_ROLE_SQL`: each table once, so each policy once).
5. **What remains is fixed**: one index-only probe per RLS table in the statement, the
   per-row `EXISTS` of `users`' policy, and the service's own cost over a raw prepared read
   (side d). The raw side runs the very statement the service sends for a user actor (its
   visibility rule folded in), so (b)/(a) is what RLS and the service layer add to it.
6. **The actor round trip (c)** is one extra statement per read whenever the pooled
   connection last served another actor. Sending it in the same pipeline as the read saves
   nothing measurable here (the `set_config` statement's server work, not the network, is
   the cost on loopback). **Actor affinity (e)**: the pool (`ActorPool`) hands a read the
   idle connection that already carries its actor, so alternating actors cost what one
   actor costs while there are as many idle connections as active actors.
"""


# ------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--teams", type=int, default=None, help="default: users / 5")
    parser.add_argument("--quick", action="store_true", help="20,000 users, 1,000 calls")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--calls", type=int, default=2_000, help="timed calls per op and side")
    parser.add_argument(
        "--side-seconds",
        type=float,
        default=20.0,
        help="fewer calls for an op whose slowest side would take longer than this",
    )
    parser.add_argument(
        "--big-team", type=int, default=10_000, help="members of the big actor's largest team"
    )
    parser.add_argument("--no-docs", action="store_true", help="print only, keep docs as is")
    args = parser.parse_args()
    if args.quick:
        args.users, args.calls = 20_000, 1_000
    teams = args.teams or max(1, args.users // 5)
    command = " ".join(["uv run python -m bench.bench_rls", *sys.argv[1:]])

    with databases(["bench_rls"]) as urls:
        url = urls["bench_rls"]
        settings = Settings(_env_file=None, database_url=url, process_report_s=0)
        role_urls = setup_cluster(url, settings)
        # Already migrated as the owner: prepare()'s upgrade finds head and does nothing.
        data = seed_dataset(url, args.users, teams, args.seed)
        big_size = min(args.big_team, args.users - 1)
        big_team = make_big_team(data, big_size, args.seed)
        with psycopg.connect(to_libpq_url(url)) as conn:
            row = conn.execute(SERVER_VERSION).fetchone()
        server = str(row[0]) if row else "?"
        app_settings = Settings(_env_file=None, database_url=role_urls["app"], process_report_s=0)
        two_settings = app_settings.model_copy(update={"pool_min_size": 2, "pool_max_size": 2})
        sections = [render_header(data, args, server, command, big_size)]
        actors = [("in small teams", None), (f"in a {big_size:,}-member team", big_team)]
        for label, big in actors:
            inputs = pick_inputs(data, args.seed, big)
            with (
                open_database(app_settings, role_urls["app"]) as app_db,
                open_database(app_settings, role_urls["app"]) as app_db_changing,
                open_database(two_settings, role_urls["app"]) as app_db_two,
                open_database(settings, url) as su_db,
                psycopg.connect(to_libpq_url(url), autocommit=True) as raw,
            ):
                with app_db.read() as conn:
                    who = conn.execute(CURRENT_ROLE_SQL).fetchone()
                if who is None or who[0] != ROLE_NAMES["app"] or who[1]:
                    raise SystemExit(f"the app side is not a NOBYPASSRLS dbops_app: {who}")
                ops = operations(
                    inputs,
                    raw,
                    ServiceSet.on(app_db),
                    ServiceSet.on(app_db_changing),
                    ServiceSet.on(su_db),
                    ServiceSet.on(app_db_two),
                )
                sizes = check_answers(ops)
                latency: dict[str, dict[str, Latency]] = {}
                for op in ops:
                    calls = calls_for(op, args.calls, args.side_seconds)
                    print(
                        f"actor {label}: timing {op.name} ({calls:,} calls/side) ...",
                        file=sys.stderr,
                        flush=True,
                    )
                    latency[op.name] = measure_pair(
                        op.sides, op.inputs, calls=calls, warmup=min(300, max(20, calls // 10))
                    )
            print("EXPLAIN ...", file=sys.stderr, flush=True)
            plans = explain_all(role_urls, data, inputs, ops)
            sections.append(render_actor(label, inputs, latency, sizes, plans))
    sections.append(CAUSES)
    report = "\n\n".join(sections)
    print(report)
    if not args.no_docs:
        write_section(DOCS, SECTION, report)
        print(f"\nwrote section '{SECTION}' of {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    main()
