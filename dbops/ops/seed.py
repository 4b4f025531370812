"""Demo data: deterministic users, teams, memberships and invitations loaded with COPY.

``seed(db, users=N, teams=M, seed=S)`` loads ``N`` generated users plus three named personas,
``M`` teams with a skewed membership distribution (most teams small, a few big, every team with
at least one OWNER) and a mix of pending/accepted/expired/revoked invitations, in one
transaction, through ``COPY ... FROM STDIN`` (text format, rows built as tab-separated lines in
chunks), then runs ``ANALYZE`` on the four tables so the planner sees the new sizes.

**Determinism.** Every id, email, name, JSON value and token is a function of ``seed`` (each
table draws from its own ``random.Random`` stream). Timestamps are spread over the past three
years *relative to the day the seed runs* (UTC), so a dashboard always shows recent activity.

**Passwords.** Hashing a password with argon2id takes tens of milliseconds on purpose, far too
slow per row for a million users; every seeded user (personas included) shares one argon2id hash
of :data:`DEMO_PASSWORD`, computed once per run with ``argon2.PasswordHasher`` and a salt derived
from the seed. Sign in as any seeded user with that password.

**Which rows are seeded.** Seeded users carry ``"seed": S`` in ``users.profile`` and seeded teams
carry it in ``teams.settings`` (so ``"seed"`` is a reserved key there); memberships and
invitations belong to seeded teams. The persona ``ada.admin@demo.dbops.dev`` also stores the
arguments of the run, ``profile -> 'seed_run'``.

**Idempotence: replace, never duplicate.** Running again with the same arguments is a no-op
(``created=False``) as long as the recorded run and the seeded row counts match. With different
arguments (or when seeded rows went missing) the previously seeded rows are deleted and the new
set is loaded, in the same transaction; rows that are not seeded (real sign-ups, test data) are
kept, except memberships in and invitations to seeded teams, which go with their team.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from argon2 import PasswordHasher
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from dbops.db.engine import Database
from dbops.errors import InvalidInput

__all__ = [
    "DEMO_PASSWORD",
    "MAX_USERS",
    "PERSONAS",
    "Persona",
    "SeedResult",
    "seed",
]

logger = logging.getLogger(__name__)

#: The password of every seeded user (personas included). Demo data only.
DEMO_PASSWORD = "dbops-demo-password"  # noqa: S105 - documented demo password, not a secret
#: Largest ``users`` accepted: a guard against a typo turning into an hour-long load.
MAX_USERS = 10_000_000
#: Bumped whenever the generator changes, so a re-run replaces data made by older code.
SEED_FORMAT = 1
#: Rows per chunk handed to COPY (and per progress-bar step).
CHUNK_ROWS = 10_000
#: A table that receives at least this many rows, and more than it holds already, gets its
#: secondary indexes dropped before its COPY and rebuilt after it (in the same transaction):
#: one sorted build is several times faster than a million random index insertions.
DEFER_INDEXES_MIN_ROWS = 50_000
#: ``maintenance_work_mem`` for those index builds.
INDEX_BUILD_MEMORY = "256MB"
#: ``statement_timeout`` / ``idle_in_transaction_session_timeout`` inside the seed transaction:
#: a million-row COPY or the cleanup of a previous big seed outlasts the 30 s session default.
SEED_TIMEOUT_MS = 15 * 60 * 1000
#: Key of the ``pg_advisory_xact_lock`` that serializes concurrent seed runs.
SEED_LOCK_KEY = 0x64626F7073656564  # "dbopseed"

#: Most members a generated team gets (the tail of the size distribution is cut here).
MAX_TEAM_SIZE = 5_000
#: Pareto shape of team sizes: ~75 % of teams have 1-2 members, ~1 in 400 has 100 or more.
TEAM_SIZE_ALPHA = 1.3
#: Share of teams with at least one invitation.
INVITING_TEAM_SHARE = 0.3
#: Most invitations of one team.
MAX_INVITATIONS_PER_TEAM = 20
#: Invitations are valid this long after they are created.
INVITATION_TTL = timedelta(days=7)
#: Seeded users and teams were created during this many days before today.
HISTORY_DAYS = 3 * 365


@dataclass(frozen=True)
class Persona:
    """A named demo user with a fixed email, always created by :func:`seed`."""

    email: str
    display_name: str
    role: str
    title: str
    owner_of: int
    member_of: int


#: Demo personas: Ada is the account-wide OWNER, Olivia owns several teams, Max is in many.
PERSONAS = (
    Persona("ada.admin@demo.dbops.dev", "Ada Admin", "OWNER", "Administrator", 0, 3),
    Persona("olivia.owner@demo.dbops.dev", "Olivia Owner", "MEMBER", "Founder", 5, 0),
    Persona("max.member@demo.dbops.dev", "Max Member", "MEMBER", "Consultant", 0, 40),
)
#: The persona whose profile records the arguments of the last run.
MARKER_EMAIL = PERSONAS[0].email


@dataclass(frozen=True)
class SeedResult:
    """What a :func:`seed` run left in the database."""

    users: int  # users now present from the seed (incl. personas)
    teams: int
    memberships: int
    invitations: int
    created: bool  # False when the same seed was already present (idempotent no-op)
    seconds: float


# ---------------------------------------------------------------------------------------- SQL
SET_TIMEOUTS = """
SELECT set_config('statement_timeout', %(timeout)s, true),
       set_config('idle_in_transaction_session_timeout', %(timeout)s, true),
       set_config('maintenance_work_mem', %(memory)s, true)
"""
TAKE_SEED_LOCK = "SELECT pg_advisory_xact_lock(%(key)s)"
MARKER_MATCHES = """
SELECT profile -> 'seed_run' = %(marker)s AS matches
FROM users
WHERE lower(email) = lower(%(email)s) AND deleted_at IS NULL
"""
SEEDED_STATE = """
SELECT (SELECT count(*) FROM users WHERE profile ? 'seed') AS seeded_users,
       (SELECT count(*) FROM teams WHERE settings ? 'seed') AS seeded_teams
"""
DELETE_SEEDED_INVITATIONS = """
DELETE FROM invitations
WHERE team_id IN (SELECT id FROM teams WHERE settings ? 'seed')
"""
DELETE_SEEDED_MEMBERSHIPS = """
DELETE FROM team_members
WHERE team_id IN (SELECT id FROM teams WHERE settings ? 'seed')
   OR user_id IN (SELECT id FROM users WHERE profile ? 'seed')
"""
DELETE_SEEDED_TEAMS = "DELETE FROM teams WHERE settings ? 'seed'"
DELETE_SEEDED_USERS = "DELETE FROM users WHERE profile ? 'seed'"
COPY_USERS = """
COPY users (id, email, password_hash, display_name, role, profile, tags, created_at, updated_at)
FROM STDIN
"""
COPY_TEAMS = "COPY teams (id, name, slug, settings, created_at, updated_at) FROM STDIN"
COPY_MEMBERSHIPS = "COPY team_members (team_id, user_id, role, created_at, updated_at) FROM STDIN"
COPY_INVITATIONS = """
COPY invitations (id, team_id, email, role, invited_by, token_hash, status, expires_at,
                  accepted_at, created_at, updated_at)
FROM STDIN
"""
ANALYZE_TABLES = "ANALYZE users, teams, team_members, invitations"
COUNT_ROWS = "SELECT count(*) FROM {}"
#: Indexes that nothing else depends on: not a primary key, not behind a constraint (unique,
#: exclusion, or the target of a foreign key), valid, in the default tablespace.
DEFERRABLE_INDEXES = """
SELECT n.nspname AS schema_name, c.relname AS index_name, pg_get_indexdef(c.oid) AS definition,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE i.indrelid = %(table)s::regclass
  AND i.indisvalid AND NOT i.indisprimary AND c.reltablespace = 0
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
ORDER BY c.relname
"""
DROP_INDEX = "DROP INDEX {}"
#: Utility statements take no bind parameters: the comment goes in as ``sql.Literal``.
COMMENT_ON_INDEX = "COMMENT ON INDEX {} IS {}"


@dataclass(frozen=True)
class _Index:
    schema_name: str
    index_name: str
    definition: str
    comment: str | None

    @property
    def identifier(self) -> sql.Identifier:
        return sql.Identifier(self.schema_name, self.index_name)


@dataclass(frozen=True)
class _SeededState:
    seeded_users: int
    seeded_teams: int


# ---------------------------------------------------------------------------------- vocabulary
def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    """
    Aaliyah Adam Aiko Alejandro Amara Amelia Andrei Anna Arjun Ava Benjamin Camila Carlos
    Chen Chloe Daniel David Diego Elena Elijah Emma Ethan Fatima Felix Freya Gabriel Grace
    Hannah Hiroshi Ibrahim Isabella Ivan Jack James Jana Javier Julia Kai Kofi Lars Layla
    Leo Liam Lucas Lucia Maya Mei Mia Mohammed Nadia Noah Nora Olga Omar Priya Rafael Ravi
    Rosa Sakura Samuel Sara Sofia Tariq Theo Valentina Wei Yara Yusuf Zoe
    """
)
LAST_NAMES = _words(
    """
    Abe Adeyemi Ahmed Alvarez Andersen Bauer Becker Brown Carter Chen Costa Dubois Evans
    Fischer Garcia Gonzalez Gupta Hansen Hoffmann Ivanova Jansen Johnson Kaur Khan Kim
    Kowalski Larsen Lee Lopez Martin Martinez Meyer Miller Moreau Muller Nakamura Nguyen
    Novak Okafor Olsen Park Patel Perez Petrov Rossi Santos Schmidt Silva Singh Smith
    Suzuki Tanaka Taylor Thompson Torres Wagner Walker Wang Weber Williams Wilson Wu
    Yamamoto Zhang
    """
)
LOCALES = (
    ("en-US", "America/New_York"),
    ("en-US", "America/Chicago"),
    ("en-US", "America/Los_Angeles"),
    ("en-GB", "Europe/London"),
    ("de-DE", "Europe/Berlin"),
    ("fr-FR", "Europe/Paris"),
    ("es-ES", "Europe/Madrid"),
    ("nl-NL", "Europe/Amsterdam"),
    ("sv-SE", "Europe/Stockholm"),
    ("pt-BR", "America/Sao_Paulo"),
    ("en-IN", "Asia/Kolkata"),
    ("ja-JP", "Asia/Tokyo"),
    ("en-AU", "Australia/Sydney"),
)
TITLES = (
    "Engineer",
    "Senior Engineer",
    "Staff Engineer",
    "Engineering Manager",
    "Product Manager",
    "Product Designer",
    "Data Analyst",
    "Data Scientist",
    "DevOps Engineer",
    "QA Engineer",
    "Support Specialist",
    "Account Executive",
    "Marketing Manager",
    "Technical Writer",
    "Founder",
    "CTO",
)
TAGS = (
    "beta",
    "early-adopter",
    "newsletter",
    "mobile",
    "api",
    "sso",
    "trial",
    "vip",
    "churn-risk",
    "partner",
)
TEAM_ADJECTIVES = _words(
    """
    amber azure bold brave bright calm clever cobalt coral crimson daring eager emerald
    fearless golden happy honest indigo ivory jade keen lively lucky mighty misty nimble
    noble olive quick quiet rapid royal ruby rustic silent silver smart solar steady
    stellar swift teal urban velvet vivid wild wise
    """
)
TEAM_NOUNS = _words(
    """
    anchors badgers beacons bears comets cranes dolphins dragons eagles embers falcons
    foxes geckos harbors hawks herons lanterns lions lynx meteors otters owls pandas
    panthers pilots pines rangers ravens rivers rockets sparrows squirrels summits tigers
    turtles voyagers wolves
    """
)
TEAM_SUFFIXES = ("", "", "", "labs", "studio", "works", "collective", "squad", "guild", "co")
PLANS = (("free", 70), ("pro", 25), ("enterprise", 5))
FEATURES = (
    "audit-log",
    "sso",
    "api-access",
    "webhooks",
    "custom-domain",
    "priority-support",
    "data-export",
)
#: (status, weight) of seeded invitations.
INVITATION_STATUSES = (("pending", 45), ("accepted", 30), ("expired", 15), ("revoked", 10))

_UUID_MASK = (1 << 128) - 1
_UUID_CLEAR = _UUID_MASK ^ ((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)


def _uuid4_text(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))``, about three times faster."""
    h = f"{(bits & _UUID_CLEAR) | _UUID_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _copy_text(value: str) -> str:
    """Escape one value for COPY's text format (backslash, tab, newline, carriage return)."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def _json_text(value: dict[str, Any]) -> str:
    return _copy_text(json.dumps(value, separators=(",", ":")))


def _stream(seed: int, name: str) -> random.Random:
    """An independent, reproducible random stream per table (str seeds hash with SHA-512)."""
    return random.Random(f"dbops-seed:{seed}:{name}")  # noqa: S311 - demo data, not crypto


def _weighted(rng: random.Random, items: tuple[tuple[str, int], ...], size: int) -> list[str]:
    """A lookup pool of ``size`` entries in which each item appears in proportion to its weight."""
    names = [name for name, _ in items]
    return rng.choices(names, weights=[w for _, w in items], k=size)


# -------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class _Plan:
    """Everything decided before the first row is written: sizes, picks and shared values."""

    seed: int
    users: int
    teams: int
    team_sizes: list[int]
    invitation_counts: list[int]
    persona_teams: list[list[int]]
    password_hash: str
    now: datetime

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def memberships(self) -> int:
        return sum(self.team_sizes) + sum(len(picks) for picks in self.persona_teams)

    @property
    def invitations(self) -> int:
        return sum(self.invitation_counts)

    @property
    def marker(self) -> dict[str, int]:
        """What the marker persona records about this run."""
        return {
            "seed": self.seed,
            "users": self.users,
            "teams": self.teams,
            "memberships": self.memberships,
            "invitations": self.invitations,
            "format": SEED_FORMAT,
        }


def _plan(users: int, teams: int, seed: int) -> _Plan:
    rng = _stream(seed, "plan")
    cap = min(users, MAX_TEAM_SIZE)
    sizes = [min(cap, int(rng.paretovariate(TEAM_SIZE_ALPHA))) for _ in range(teams)]
    invitations = [
        min(MAX_INVITATIONS_PER_TEAM, int(rng.paretovariate(1.5)))
        if rng.random() < INVITING_TEAM_SHARE
        else 0
        for _ in range(teams)
    ]
    persona_teams = [
        rng.sample(range(teams), min(teams, p.owner_of + p.member_of)) for p in PERSONAS
    ]
    salt = _stream(seed, "password").randbytes(16)
    password_hash = PasswordHasher().hash(DEMO_PASSWORD, salt=salt)
    return _Plan(
        seed=seed,
        users=users,
        teams=teams,
        team_sizes=sizes,
        invitation_counts=invitations,
        persona_teams=persona_teams,
        password_hash=password_hash,
        now=datetime.now(UTC).replace(microsecond=0),
    )


# ------------------------------------------------------------------------------ row generation
Chunks = Iterator[tuple[str, int]]


class _Clock:
    """Cheap timestamp text for COPY: a day string plus a precomputed time-of-day string."""

    def __init__(self, today: date) -> None:
        self.days = [(today - timedelta(days=d)).isoformat() for d in range(1, HISTORY_DAYS + 1)]
        self.times = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00" for s in range(86_400)]

    def pick(self, r: int) -> str:
        """A timestamp in the past ``HISTORY_DAYS`` days from the random integer ``r``."""
        return f"{self.days[r % HISTORY_DAYS]} {self.times[r // HISTORY_DAYS % 86_400]}"


@dataclass
class _Ids:
    """Ids handed from one table's generator to the next (text form, as COPY wants them)."""

    users: list[str]
    personas: list[str]
    teams: list[str]
    team_owners: list[int]


def _user_chunks(plan: _Plan, ids: _Ids, clock: _Clock) -> Chunks:
    vocab = _stream(plan.seed, "user-vocabulary")
    seed_key = {"seed": plan.seed}
    profiles = [
        _json_text({"locale": loc, "timezone": tz, "title": title, **seed_key})
        for loc, tz in LOCALES
        for title in TITLES
    ]
    tag_pool = ["{}"] * 4 + [
        "{" + ",".join(sorted(vocab.sample(TAGS, k))) + "}"
        for k in (1, 1, 1, 1, 2, 2, 3)
        for _ in range(64)
    ]
    firsts = [(name, name.lower()) for name in FIRST_NAMES]
    lasts = [(name, name.lower()) for name in LAST_NAMES]
    n_first, n_last, n_prof, n_tags = len(firsts), len(lasts), len(profiles), len(tag_pool)
    password = _copy_text(plan.password_hash)

    rng = _stream(plan.seed, "users")
    persona_lines = []
    for persona in PERSONAS:
        uid = _uuid4_text(rng.getrandbits(128))
        ids.personas.append(uid)
        loc, tz = LOCALES[3]
        profile: dict[str, Any] = {"locale": loc, "timezone": tz, "title": persona.title}
        profile |= seed_key
        if persona.email == MARKER_EMAIL:
            profile["seed_run"] = plan.marker
        created = clock.pick(rng.getrandbits(32))
        persona_lines.append(
            f"{uid}\t{persona.email}\t{password}\t{persona.display_name}\t{persona.role}\t"
            f"{_json_text(profile)}\t{{}}\t{created}\t{created}\n"
        )
    yield "".join(persona_lines), len(PERSONAS)

    bits = rng.getrandbits
    out = ids.users
    pick_time = clock.pick
    lines: list[str] = []
    for i in range(1, plan.users + 1):
        uid = _uuid4_text(bits(128))
        out.append(uid)
        r = bits(64)
        first, first_l = firsts[r % n_first]
        r //= n_first
        last, last_l = lasts[r % n_last]
        r //= n_last
        profile_text = profiles[r % n_prof]
        r //= n_prof
        tags = tag_pool[r % n_tags]
        created = pick_time(r // n_tags)
        lines.append(
            f"{uid}\t{first_l}.{last_l}{i}@example.com\t{password}\t{first} {last}\tMEMBER\t"
            f"{profile_text}\t{tags}\t{created}\t{created}\n"
        )
        if len(lines) == CHUNK_ROWS:
            yield "".join(lines), len(lines)
            lines = []
    if lines:
        yield "".join(lines), len(lines)


def _team_chunks(plan: _Plan, ids: _Ids, clock: _Clock) -> Chunks:
    vocab = _stream(plan.seed, "team-vocabulary")
    seed_key = {"seed": plan.seed}
    settings_pool = []
    for plan_name in _weighted(vocab, PLANS, 100):
        wanted = {"free": (0, 1), "pro": (1, 3), "enterprise": (3, len(FEATURES))}[plan_name]
        features = sorted(vocab.sample(FEATURES, vocab.randint(*wanted)))
        settings_pool.append(_json_text({"plan": plan_name, "features": features, **seed_key}))
    n_adj, n_noun = len(TEAM_ADJECTIVES), len(TEAM_NOUNS)
    n_suffix, n_settings = len(TEAM_SUFFIXES), len(settings_pool)

    rng = _stream(plan.seed, "teams")
    bits = rng.getrandbits
    out = ids.teams
    lines: list[str] = []
    for j in range(1, plan.teams + 1):
        tid = _uuid4_text(bits(128))
        out.append(tid)
        r = bits(64)
        adj = TEAM_ADJECTIVES[r % n_adj]
        r //= n_adj
        noun = TEAM_NOUNS[r % n_noun]
        r //= n_noun
        suffix = TEAM_SUFFIXES[r % n_suffix]
        r //= n_suffix
        settings = settings_pool[r % n_settings]
        created = clock.pick(r // n_settings)
        words = [adj, noun, suffix] if suffix else [adj, noun]
        name = " ".join(w.capitalize() for w in words)
        slug = "-".join(words)
        lines.append(f"{tid}\t{name} {j}\t{slug}-{j}\t{settings}\t{created}\t{created}\n")
        if len(lines) == CHUNK_ROWS:
            yield "".join(lines), len(lines)
            lines = []
    if lines:
        yield "".join(lines), len(lines)


def _membership_chunks(plan: _Plan, ids: _Ids, clock: _Clock) -> Chunks:
    rng = _stream(plan.seed, "memberships")
    user_ids, team_ids, owners = ids.users, ids.teams, ids.team_owners
    population = range(plan.users)
    sample, bits, rand = rng.sample, rng.getrandbits, rng.random
    lines: list[str] = []
    for team, size in enumerate(plan.team_sizes):
        tid = team_ids[team]
        members = sample(population, size)
        owners.append(members[0])
        created = clock.pick(bits(32))
        lines.append(f"{tid}\t{user_ids[members[0]]}\tOWNER\t{created}\t{created}\n")
        # Bigger teams sometimes have a second owner.
        second_owner = size >= 8 and rand() < 0.3
        for k, member in enumerate(members[1:], start=1):
            role = "OWNER" if k == 1 and second_owner else "MEMBER"
            created = clock.pick(bits(32))
            lines.append(f"{tid}\t{user_ids[member]}\t{role}\t{created}\t{created}\n")
        if len(lines) >= CHUNK_ROWS:
            yield "".join(lines), len(lines)
            lines = []
    for persona, uid, picks in zip(PERSONAS, ids.personas, plan.persona_teams, strict=True):
        for k, team in enumerate(picks):
            role = "OWNER" if k < persona.owner_of else "MEMBER"
            created = clock.pick(bits(32))
            lines.append(f"{team_ids[team]}\t{uid}\t{role}\t{created}\t{created}\n")
    if lines:
        yield "".join(lines), len(lines)


def _invitation_chunks(plan: _Plan, ids: _Ids, clock: _Clock) -> Chunks:
    rng = _stream(plan.seed, "invitations")
    statuses = _weighted(rng, INVITATION_STATUSES, 100)
    now = plan.now
    bits, randbytes = rng.getrandbits, rng.randbytes
    n_first, n_last = len(FIRST_NAMES), len(LAST_NAMES)
    ttl_s = int(INVITATION_TTL.total_seconds())
    lines: list[str] = []
    serial = 0
    for team, count in enumerate(plan.invitation_counts):
        if not count:
            continue
        tid = ids.teams[team]
        inviter = ids.users[ids.team_owners[team]]
        for _ in range(count):
            serial += 1
            iid = _uuid4_text(bits(128))
            r = bits(64)
            first = FIRST_NAMES[r % n_first].lower()
            r //= n_first
            last = LAST_NAMES[r % n_last].lower()
            r //= n_last
            status = statuses[r % 100]
            r //= 100
            role = "OWNER" if r % 10 == 0 else "MEMBER"
            r //= 10
            # Pending ones are still valid (created within the TTL); the others are older,
            # up to 90 days.
            fresh = status == "pending"
            age_s = 60 + r % (ttl_s - 3600) if fresh else ttl_s + r % (83 * 86_400)
            created = now - timedelta(seconds=age_s)
            expires = created + INVITATION_TTL
            accepted = "\\N"
            if status == "accepted":
                accepted_at = created + timedelta(seconds=60 + bits(32) % (ttl_s - 120))
                accepted = accepted_at.isoformat()
            token_hash = hashlib.sha256(randbytes(32)).hexdigest()
            created_s = created.isoformat()
            updated_s = accepted if status == "accepted" else created_s
            lines.append(
                f"{iid}\t{tid}\t{first}.{last}{serial}@example.org\t{role}\t{inviter}\t"
                f"\\\\x{token_hash}\t{status}\t{expires.isoformat()}\t{accepted}\t"
                f"{created_s}\t{updated_s}\n"
            )
        if len(lines) >= CHUNK_ROWS:
            yield "".join(lines), len(lines)
            lines = []
    if lines:
        yield "".join(lines), len(lines)


# ------------------------------------------------------------------------------------ loading
class _Tracker:
    """Per-table progress: a rich progress bar when asked for, and a log line per table."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._task: TaskID | None = None

    def start(self, table: str, total: int) -> None:
        if self._progress is not None:
            self._task = self._progress.add_task(table, total=total)

    def advance(self, rows: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, rows)


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description:<13}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def _copy(
    cur: psycopg.Cursor[Any],
    statement: str,
    table: str,
    total: int,
    chunks: Chunks,
    tracker: _Tracker,
) -> None:
    tracker.start(table, total)
    started = time.perf_counter()
    rows = 0
    with cur.copy(statement) as copy:
        for chunk, count in chunks:
            copy.write(chunk)
            rows += count
            tracker.advance(count)
    seconds = time.perf_counter() - started
    logger.info(
        "seed: copied %d %s rows in %.2f s",
        rows,
        table,
        seconds,
        extra={"table": table, "rows": rows, "seconds": seconds},
    )


def _remove_previous(cur: psycopg.Cursor[Any], state: _SeededState) -> None:
    """Delete the rows of an earlier seed run.

    DELETE rather than TRUNCATE: other tables (added by later migrations) may reference users
    and teams, and their own ON DELETE rules must apply to seeded rows.
    """
    if not (state.seeded_users or state.seeded_teams):
        return
    started = time.perf_counter()
    for statement in (
        DELETE_SEEDED_INVITATIONS,
        DELETE_SEEDED_MEMBERSHIPS,
        DELETE_SEEDED_TEAMS,
        DELETE_SEEDED_USERS,
    ):
        cur.execute(statement)
    logger.info("seed: removed the previous seed in %.2f s", time.perf_counter() - started)


def _defer_indexes(conn: psycopg.Connection[Any], loads: dict[str, int]) -> list[_Index]:
    """Drop the secondary indexes of tables about to receive a large share of their rows."""
    deferred: list[_Index] = []
    index_cur = conn.cursor(row_factory=class_row(_Index))
    for table, rows in loads.items():
        if rows < DEFER_INDEXES_MIN_ROWS:
            continue
        count = conn.execute(sql.SQL(COUNT_ROWS).format(sql.Identifier(table))).fetchone()
        if count is not None and count[0] > rows:
            continue
        for index in index_cur.execute(DEFERRABLE_INDEXES, {"table": table}).fetchall():
            conn.execute(sql.SQL(DROP_INDEX).format(index.identifier))
            deferred.append(index)
    if deferred:
        logger.info("seed: deferred %d indexes until after the load", len(deferred))
    return deferred


def _rebuild_indexes(
    conn: psycopg.Connection[Any], indexes: list[_Index], tracker: _Tracker
) -> None:
    if not indexes:
        return
    started = time.perf_counter()
    tracker.start("indexes", len(indexes))
    for index in indexes:
        # The statement comes from pg_get_indexdef() above, not from user input.
        conn.execute(sql.SQL(index.definition))
        if index.comment is not None:
            conn.execute(
                sql.SQL(COMMENT_ON_INDEX).format(index.identifier, sql.Literal(index.comment))
            )
        tracker.advance(1)
    logger.info("seed: rebuilt %d indexes in %.2f s", len(indexes), time.perf_counter() - started)


def _validate(users: int, teams: int, seed: int) -> None:
    for name, value in (("users", users), ("teams", teams), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInput(f"{name} must be a whole number", field=name)
    if users < 0:
        raise InvalidInput("users must be 0 or more", field="users")
    if users > MAX_USERS:
        raise InvalidInput(f"users must be at most {MAX_USERS:,}", field="users")
    if teams < 0:
        raise InvalidInput("teams must be 0 or more", field="teams")
    if teams > 0 and teams > users:
        raise InvalidInput(
            "teams must not exceed users: every team needs a seeded user as its owner",
            field="teams",
        )


def seed(
    db: Database,
    *,
    users: int = 10_000,
    teams: int = 1_000,
    seed: int = 42,
    progress: bool = False,
) -> SeedResult:
    """Load deterministic demo data, or do nothing when the same seed is already loaded.

    Args:
        db: the database to fill (migrated to head).
        users: generated users, on top of the three :data:`PERSONAS`.
        teams: generated teams; at most ``users`` (each needs an owner) unless 0.
        seed: the random seed; the same value always produces the same rows.
        progress: show a per-table progress bar on stderr.

    Returns:
        The seeded row counts and whether anything was written.

    Raises:
        InvalidInput: an argument is out of range (checked before any database work).
        Conflict: a generated email or slug is taken by a row that is not seeded.

    Everything happens in one transaction: on any error nothing of this run is left behind
    and an earlier seed stays as it was.
    """
    _validate(users, teams, seed)
    started = time.perf_counter()
    plan = _plan(users, teams, seed)
    expected_users = users + len(PERSONAS)
    with ExitStack() as stack, db.connection() as conn, conn.transaction():
        cur = conn.cursor()
        cur.execute(SET_TIMEOUTS, {"timeout": str(SEED_TIMEOUT_MS), "memory": INDEX_BUILD_MEMORY})
        cur.execute(TAKE_SEED_LOCK, {"key": SEED_LOCK_KEY})
        found = cur.execute(
            MARKER_MATCHES, {"marker": Jsonb(plan.marker), "email": MARKER_EMAIL}
        ).fetchone()
        state_cur = conn.cursor(row_factory=class_row(_SeededState))
        state = state_cur.execute(SEEDED_STATE).fetchone()
        assert state is not None
        if (
            found is not None
            and found[0] is True
            and state.seeded_users == expected_users
            and state.seeded_teams == teams
        ):
            return SeedResult(
                users=expected_users,
                teams=teams,
                memberships=plan.memberships,
                invitations=plan.invitations,
                created=False,
                seconds=time.perf_counter() - started,
            )
        bar: AbstractContextManager[Progress | None] = (
            _progress_bar() if progress else nullcontext()
        )
        tracker = _Tracker(stack.enter_context(bar))
        _remove_previous(cur, state)
        loads = {
            "users": expected_users,
            "teams": teams,
            "team_members": plan.memberships,
            "invitations": plan.invitations,
        }
        deferred = _defer_indexes(conn, loads)
        clock = _Clock(plan.today)
        ids = _Ids(users=[], personas=[], teams=[], team_owners=[])
        steps: list[tuple[str, str, int, Callable[[_Plan, _Ids, _Clock], Chunks]]] = [
            (COPY_USERS, "users", expected_users, _user_chunks),
            (COPY_TEAMS, "teams", teams, _team_chunks),
            (COPY_MEMBERSHIPS, "team_members", plan.memberships, _membership_chunks),
            (COPY_INVITATIONS, "invitations", plan.invitations, _invitation_chunks),
        ]
        for statement, table, total, generate in steps:
            _copy(cur, statement, table, total, generate(plan, ids, clock), tracker)
        _rebuild_indexes(conn, deferred, tracker)
        analyze_started = time.perf_counter()
        cur.execute(ANALYZE_TABLES)
        logger.info("seed: analyzed in %.2f s", time.perf_counter() - analyze_started)
    return SeedResult(
        users=expected_users,
        teams=teams,
        memberships=plan.memberships,
        invitations=plan.invitations,
        created=True,
        seconds=time.perf_counter() - started,
    )
